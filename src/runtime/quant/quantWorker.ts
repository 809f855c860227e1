import { closeSync, openSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { PartTask, quantizePart } from './quantFile.js';

/** A quantization thread: quantizes its share of a QuantFile's float parts into the file. */
const { file, tasks } = workerData as { file: string; tasks: PartTask[] };
const fd = openSync(file, 'r+');
try {
  for (const t of tasks) quantizePart(fd, t, (rows) => parentPort!.postMessage({ rows }));
  parentPort!.postMessage({});
} catch (e) {
  parentPort!.postMessage({ error: (e as Error).message });
} finally {
  closeSync(fd);
}
