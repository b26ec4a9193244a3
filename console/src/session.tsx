/** The logged-in key and what its role may do, for every page (`useMe()`). */
import { createContext, useContext } from "react";
import type { Me } from "./api";

export const MeContext = createContext<Me | null>(null);

export function useMe(): Me {
  const me = useContext(MeContext);
  if (!me) throw new Error("useMe() outside a logged-in page");
  return me;
}
