/** The admin API, as the console calls it: same origin, `Authorization: Bearer <key>`, RFC 9457
 * problems turned into `ApiError` (with the per-field `errors` the forms show next to fields).
 * Everything the console does goes through here, so a script with a key can do the same. */

export const API = "/api/v1";

export interface FieldProblem {
  field: string;
  message: string;
  location?: string;
}

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail?: string | null;
  errors?: FieldProblem[] | null;
  current_version?: number | null;
  /** Extension members of some problems (the release gate's `failing_scenarios`, `run_id`). */
  [member: string]: unknown;
}

export class ApiError extends Error {
  readonly status: number;
  readonly problem: Problem;
  constructor(problem: Problem) {
    super(problem.detail ? `${problem.title}: ${problem.detail}` : problem.title);
    this.status = problem.status;
    this.problem = problem;
  }
  /** The message for one field path (exact, or the first nested under it). */
  fieldError(field: string): string | undefined {
    const errors = this.problem.errors ?? [];
    return (
      errors.find((e) => e.field === field)?.message ??
      errors.find((e) => e.field.startsWith(field + "."))?.message
    );
  }
}

/** Anything a call threw, as the ApiError the pages show (a network failure has status 0). */
export function asApiError(e: unknown): ApiError {
  return e instanceof ApiError ? e : new ApiError({ type: "about:blank", title: (e as Error).message, status: 0 });
}

const KEY_STORAGE = "switchboard.apiKey";

/** The key lives only for the browser session (sessionStorage: gone when the tab closes). */
export const credentials = {
  get: (): string | null => sessionStorage.getItem(KEY_STORAGE),
  set: (key: string) => sessionStorage.setItem(KEY_STORAGE, key),
  clear: () => sessionStorage.removeItem(KEY_STORAGE),
};

export interface Response<T> {
  body: T;
  etag: string | null;
  /** 200 or another success: a gated save answers 202 (filed as a candidate, not live). */
  status: number;
  headers: Headers;
}

export async function request<T>(
  method: string,
  path: string,
  options: {
    body?: unknown;
    ifMatch?: string | null;
    key?: string;
    query?: Record<string, unknown>;
    headers?: Record<string, string>;
  } = {},
): Promise<Response<T>> {
  const key = options.key ?? credentials.get();
  const headers: Record<string, string> = { ...options.headers, Accept: "application/json" };
  if (key) headers.Authorization = `Bearer ${key}`;
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  if (options.ifMatch) headers["If-Match"] = options.ifMatch;
  let url = path.startsWith("/") ? path : `${API}/${path}`;
  if (options.query) {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(options.query)) {
      if (value !== undefined && value !== null && value !== "") params.set(name, String(value));
    }
    const text = params.toString();
    if (text) url += `?${text}`;
  }
  let response: globalThis.Response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
    });
  } catch (error) {
    throw new ApiError({ type: "network", title: "The admin API cannot be reached", status: 0, detail: String(error) });
  }
  const text = await response.text();
  const parsed = text ? safeJson(text) : null;
  if (!response.ok) {
    const problem: Problem =
      parsed && typeof parsed === "object" && "title" in parsed
        ? (parsed as Problem)
        : { type: "about:blank", title: response.statusText || "Request failed", status: response.status, detail: text.slice(0, 300) };
    if (response.status === 401) window.dispatchEvent(new CustomEvent("switchboard:unauthenticated"));
    throw new ApiError(problem);
  }
  return { body: parsed as T, etag: response.headers.get("ETag"), status: response.status, headers: response.headers };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

export const get = <T>(path: string, query?: Record<string, unknown>) =>
  request<T>("GET", path, { query }).then((r) => r.body);
export const post = <T>(path: string, body?: unknown) => request<T>("POST", path, { body }).then((r) => r.body);

/** Who the key belongs to: the console shows what the role allows; the API enforces it. */
export interface Me {
  name: string;
  role: "admin" | "viewer" | "token";
  scopes: string[];
  can: { read: boolean; write: boolean; mint_tokens: boolean };
}

export const fetchMe = (key?: string) => request<Me>("GET", "me", { key }).then((r) => r.body);
