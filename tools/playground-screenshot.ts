/**
 * Writes docs/images/playground.png: the playground answering questions about a picture with
 * the built-in model. Run after a build: node dist/tools/playground-screenshot.js [out.png]
 */
import { join } from 'node:path';
import { launchBrowser } from '../test/helpers/browser.js';
import { projectRoot } from '../test/helpers/paths.js';
import { startIris } from '../test/helpers/server.js';

const out = process.argv[2] ?? join(projectRoot, 'docs', 'images', 'playground.png');
const iris = await startIris([], { modelPath: null });
const browser = await launchBrowser();
try {
  const page = await browser.context.newPage();
  await page.goto(`${iris.baseUrl}/`);
  await page.getByTestId('model-name').filter({ hasText: 'iris-shapes-v1' }).waitFor();
  await page.getByTestId('temperature').fill('0');

  const ask = async (question: string, image?: string) => {
    const answers = await page.getByTestId('assistant-message').count();
    if (image) await page.getByTestId('image-input').setInputFiles(join(projectRoot, 'test', 'fixtures', 'shapes', image));
    await page.getByTestId('prompt').fill(question);
    await page.getByTestId('send').click();
    await page.getByTestId('stats').nth(answers).filter({ hasText: 'cached tokens' }).waitFor();
  };
  await ask('What is in this image?', 's20_04_0.png');
  await ask('How many shapes are there?');
  await page.getByTestId('prompt').fill('What colour is the star?');
  await page.screenshot({ path: out });
  process.stdout.write(`wrote ${out}\n`);
} finally {
  await browser.close();
  await iris.stop();
}
