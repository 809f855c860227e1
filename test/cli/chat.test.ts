import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { ChatMessage } from '../../src/tokenizer/chatMessages.js';
import { withEngine } from '../helpers/checkpoints.js';
import { fixturePath, projectRoot } from '../helpers/paths.js';
import { MODEL_PATH, startIris } from '../helpers/server.js';

const IMAGE = fixturePath('golden/qwen2_5_vl/cases/chat_one_image/image0.png');

/** Runs `iris chat` with the lines on standard input; its exit code and output. */
function chat(args: string[], lines: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [join(projectRoot, 'dist/src/cli/main.js'), 'chat', '--max-tokens', '6', '--temperature', '0', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('close', (code) => resolve({ code, stdout, stderr }));
    p.stdin.end(lines.map((l) => `${l}\n`).join(''));
  });
}

/** The answers the engine gives for each user turn of a conversation (greedy, 6 tokens), history included. */
async function expectedAnswers(turns: Array<ChatMessage['content'] | null>): Promise<string[]> {
  return withEngine(MODEL_PATH, async (e) => {
    const history: ChatMessage[] = [];
    const answers: string[] = [];
    for (const content of turns) {
      if (content === null) {
        history.length = 0;
        continue;
      }
      const turn: ChatMessage = { role: 'user', content };
      const r = await e.generate({ messages: [...history, turn], sampling: { maxNewTokens: 6, temperature: 0 } });
      history.push(turn, { role: 'assistant', content: r.text });
      answers.push(r.text);
    }
    return answers;
  });
}

test('iris chat from a pipe: answers with history and images, commands, errors that keep the chat going, /exit', async () => {
  const r = await chat(['--model-path', MODEL_PATH, '--threads', '1'], ['hello', '/help', `/image ${IMAGE}`, 'what is this?', '/image /nonexistent/x.png', '/frob', 'again', '/clear', 'bye now', '/exit', 'never answered']);
  assert.equal(r.code, 0, r.stderr);
  const [a1, a2, a3, a4] = await expectedAnswers(['hello', [{ type: 'image_url', image_url: { url: IMAGE } }, { type: 'text', text: 'what is this?' }], 'again', null, 'bye now']);
  const want = [
    `${a1}\n\n`,
    'Commands:\n',
    `Attached ${IMAGE} (1 for the next message).\n`,
    `${a2}\n\n`,
    'error: ENOENT',
    'error: unknown command /frob; /help lists them\n',
    `${a3}\n\n`,
    'Cleared.\n',
    `${a4}\n\n`,
  ];
  let at = 0;
  for (const piece of want) {
    const i = r.stdout.indexOf(piece, at);
    assert.ok(i >= 0, `missing, in order: ${JSON.stringify(piece)} in ${JSON.stringify(r.stdout)}`);
    at = i + piece.length;
  }
  assert.ok(r.stdout.endsWith(`${a4}\n\n`), 'nothing is answered after /exit');
});

test('iris chat --url: the same conversation through a server; its errors are shown and the chat goes on; end of input exits 0', async () => {
  const iris = await startIris();
  try {
    const notImage = join(tmpdir(), `iris-chat-${process.pid}.png`);
    writeFileSync(notImage, 'this is not an image');
    const r = await chat(['--url', iris.baseUrl], ['hello', `/image ${notImage}`, 'look', 'again']);
    assert.equal(r.code, 0, r.stderr);
    const [a1] = await expectedAnswers(['hello']);
    assert.ok(r.stdout.startsWith(`${a1}\n\n`), r.stdout);
    assert.match(r.stdout, /error: 400: .*image/i);
    assert.match(r.stdout, /\(attached images dropped\)\n\n[\s\S]+\n\n$/);
  } finally {
    await iris.stop();
  }
});
