/** Read again when a parent says so: a counter it increments, for lists whose rows load their own data. */
import { useEffect, useRef } from 'react';

/** Call `reload` whenever `refresh` changes (not on the first render: it loads by itself). */
export function useRefresh(
  refresh: number,
  reload: () => Promise<unknown>
): void {
  const first = useRef(refresh);
  useEffect(() => {
    if (refresh !== first.current) {
      void reload();
    }
  }, [refresh]);
}
