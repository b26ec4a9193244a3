/** Page changes for keyboard and screen-reader users. The console is one document with hash
 * routes: nothing tells a screen reader that a link opened another page, and the focus stays
 * on the link that is gone (or falls to the body). So each page names itself
 * (`usePageTitle`): the document title becomes the page's, and after a navigation the focus
 * moves to the page's heading (`main h1`), which a screen reader reads out. */
import { useEffect } from "react";

const APP = "Switchboard";

/** The route's path without its query: a filter written to the URL (`#/sessions?user=`) is
 * the same page, and must not take the focus away from the filter being typed in. */
const routePath = () => window.location.hash.replace(/^#\/?/, "").split("?", 1)[0];

let shownPath = routePath();
let focusPending = false;

window.addEventListener("hashchange", () => {
  const path = routePath();
  if (path !== shownPath) focusPending = true;
  shownPath = path;
});

/** The next page that names itself takes the focus to its heading (after logging in, say,
 * where the form that had the focus is gone). */
export function moveFocusToNextPage(): void {
  focusPending = true;
}

/** Focus `main h1` (made focusable by script only, so it is no Tab stop). */
export function focusPageHeading(): boolean {
  const heading = document.querySelector<HTMLElement>("main h1");
  if (!heading) return false;
  if (!heading.hasAttribute("tabindex")) heading.tabIndex = -1;
  heading.focus();
  return true;
}

/** Name the page shown: `title` (null while it loads: the heading is not there yet). */
export function usePageTitle(title: string | null): void {
  useEffect(() => {
    if (title === null) return;
    document.title = `${title} · ${APP}`;
    if (focusPending && focusPageHeading()) focusPending = false;
  }, [title]);
}

/** Move the focus to `element` once it is in the page (after a click that removed the
 * control that had it: Join, End session). */
export function focusSoon(find: () => HTMLElement | null | undefined): void {
  requestAnimationFrame(() => {
    const element = find();
    if (!element) return;
    if (!element.hasAttribute("tabindex") && !element.matches("a[href], button, input, select, textarea")) element.tabIndex = -1;
    element.focus();
  });
}
