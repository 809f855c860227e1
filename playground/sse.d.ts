// Types of sse.js for the Node unit test (the page loads the JavaScript as it is).
export function createSseParser(onData: (data: string) => void): { push(bytes: Uint8Array): void; end(): void };
