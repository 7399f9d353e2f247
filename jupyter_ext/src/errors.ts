/**
 * Turning an API failure into a sentence a person can act on.
 *
 * The server answers errors as `{status, message, field}`; its message is kept, and a status
 * without one gets a sentence saying what it means here.
 */

const SENTENCES: Record<number, string> = {
  401: 'You are not signed in any more: reload the page to sign in again.',
  403: 'You do not have the permission to do this.',
  404: 'This does not exist, or you may not see it.',
  409: 'This conflicts with the current state: refresh and try again.',
  429: 'The platform is busy: try again in a moment.'
};

export interface IFailure {
  message: string;
  field: string | null;
}

export function describeFailure(status: number, body: unknown): IFailure {
  const reply = (body ?? {}) as { message?: unknown; field?: unknown };
  const field = typeof reply.field === 'string' ? reply.field : null;
  if (typeof reply.message === 'string' && reply.message.trim() !== '') {
    return { message: reply.message, field };
  }
  const sentence =
    SENTENCES[status] ??
    (status >= 500
      ? 'The server failed; its log says why.'
      : `The request failed (HTTP ${status}).`);
  return { message: sentence, field };
}

/** The sentence for anything thrown while talking to the API. */
export function errorText(error: unknown): string {
  if (error instanceof Error) {
    return error.message;
  }
  return String(error);
}
