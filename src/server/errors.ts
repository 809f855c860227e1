import { IrisError } from '../errors.js';

/** The OpenAI/SGLang error body: {object, message, type, param, code}. */
export interface ErrorBody {
  object: 'error';
  message: string;
  type: string;
  param: string | null;
  code: number;
  request_id?: string;
  /** The same fields nested, as OpenAI's clients read them. */
  error?: { message: string; type: string; param: string | null; code: number };
}

/** SGLang's flat error body plus OpenAI's nested `error`, so every client shows the message. */
export function errorBody(message: string, type: string, param: string | null, code: number, extra: Partial<ErrorBody> = {}): ErrorBody {
  return { object: 'error', message, type, param, code, ...extra, error: { message, type, param, code } };
}

/** Renders any thrown value; only IrisErrors below 500 show their message to the client. */
export function renderError(e: unknown, requestId: string): { status: number; body: ErrorBody; internal: boolean } {
  if (e instanceof IrisError && e.status < 500) {
    return { status: e.status, body: errorBody(e.message, e.type, e.param, e.status), internal: false };
  }
  if (e instanceof IrisError && e.status === 503) {
    return { status: 503, body: errorBody(e.message, e.type, null, 503), internal: false };
  }
  const fastifyErr = e as { statusCode?: number; code?: string; message?: string };
  if (fastifyErr?.statusCode && fastifyErr.statusCode < 500) {
    const status = fastifyErr.statusCode;
    const message =
      fastifyErr.code === 'FST_ERR_CTP_BODY_TOO_LARGE'
        ? 'the request body is too large'
        : fastifyErr.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE'
          ? 'the request body must be JSON (Content-Type: application/json)'
          : status === 400
            ? `the request body is not valid JSON: ${fastifyErr.message ?? ''}`
            : (fastifyErr.message ?? 'bad request');
    return { status, body: errorBody(message, status === 413 ? 'RequestTooLargeError' : 'BadRequestError', null, status), internal: false };
  }
  return {
    status: 500,
    body: errorBody(`internal server error (request id ${requestId})`, 'InternalServerError', null, 500, { request_id: requestId }),
    internal: true,
  };
}
