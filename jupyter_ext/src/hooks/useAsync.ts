/**
 * A value loaded from the API: loading, its error in words, and a reload that keeps the value
 * shown while it reads again. Answers to an older load never overwrite a newer one.
 */
import {
  DependencyList,
  useCallback,
  useEffect,
  useRef,
  useState
} from 'react';

import { errorText } from '../errors';

export interface IAsync<T> {
  value: T | null;
  error: string | null;
  loading: boolean;
  reload: () => Promise<void>;
}

/** Load `load()` now and whenever `deps` change; `reload` loads again without blanking the view. */
export function useAsync<T>(
  load: () => Promise<T>,
  deps: DependencyList
): IAsync<T> {
  const [value, setValue] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const generation = useRef(0);
  const run = useCallback(async () => {
    const mine = ++generation.current;
    setLoading(true);
    try {
      const result = await load();
      if (mine === generation.current) {
        setValue(result);
        setError(null);
      }
    } catch (failure) {
      if (mine === generation.current) {
        setError(errorText(failure));
      }
    } finally {
      if (mine === generation.current) {
        setLoading(false);
      }
    }
  }, deps);
  useEffect(() => {
    setValue(null);
    void run();
  }, [run]);
  return { value, error, loading, reload: run };
}
