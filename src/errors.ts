/**
 * Error classes carry an HTTP status and an OpenAI error `type`, so they can be
 * thrown where the fault is known and rendered once by the server.
 */
export class IrisError extends Error {
  readonly status: number;
  readonly type: string;
  readonly param: string | null;
  constructor(message: string, opts: { status?: number; type?: string; param?: string | null } = {}) {
    super(message);
    this.name = new.target.name;
    this.status = opts.status ?? 500;
    this.type = opts.type ?? 'InternalServerError';
    this.param = opts.param ?? null;
  }
}

/** The caller sent something unusable (bad field, bad image, prompt too long). */
export class InvalidRequestError extends IrisError {
  constructor(message: string, param: string | null = null) {
    super(message, { status: 400, type: 'BadRequestError', param });
  }
}

/** A model folder is incomplete or inconsistent: names the file or tensor at fault. */
export class ModelLoadError extends IrisError {
  constructor(message: string) {
    super(message, { status: 500, type: 'ModelLoadError' });
  }
}

/** An image could not be fetched, decoded or accepted. */
export class ImageError extends InvalidRequestError {
  constructor(message: string, param: string | null = null) {
    super(message, param);
  }
}
