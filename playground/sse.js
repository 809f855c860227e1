// @ts-check
/**
 * Splits a server-sent-events byte stream into the `data:` payload of each event. Chunks may
 * cut events, lines and UTF-8 characters anywhere; the caller feeds them as they arrive.
 * @param {(data: string) => void} onData
 */
export function createSseParser(onData) {
  const decoder = new TextDecoder();
  let buffer = '';
  /** @type {string[]} */
  let data = [];
  /** @param {string} line */
  const takeLine = (line) => {
    if (line === '') {
      if (data.length) onData(data.join('\n'));
      data = [];
    } else if (line.startsWith('data:')) {
      data.push(line.slice(line[5] === ' ' ? 6 : 5));
    }
    // Comments (":") and other fields (event, id, retry) carry nothing the page needs.
  };
  return {
    /** @param {Uint8Array} bytes */
    push(bytes) {
      buffer += decoder.decode(bytes, { stream: true });
      let nl;
      while ((nl = buffer.search(/\r\n|\r|\n/)) >= 0) {
        // A lone \r at the very end may be the first half of \r\n: wait for the next chunk.
        if (buffer[nl] === '\r' && nl === buffer.length - 1) break;
        const width = buffer.startsWith('\r\n', nl) ? 2 : 1;
        takeLine(buffer.slice(0, nl));
        buffer = buffer.slice(nl + width);
      }
    },
    /** Ends the stream: a last event without its blank line still counts. */
    end() {
      buffer += decoder.decode();
      if (buffer) takeLine(buffer);
      buffer = '';
      takeLine('');
    },
  };
}
