// "Copy link" and "copy embed code": the text is the page's own address (or an iframe of it with
// one view), and the embed code's address opens that view alone.
import { fail, settled } from './common.mjs';

export async function share(page, base, tag) {
  await page.context().grantPermissions(['clipboard-read', 'clipboard-write']).catch(() => {});
  await page.goto(`${base}?sample=3&layer=relu1&neuron=2`);
  await settled(page);
  await page.click('button[data-action="copy-link"]');
  await page.waitForFunction(() => (document.querySelector('#share-said')?.textContent ?? '') !== '');
  const link = await page.inputValue('#share-text');
  const said = await page.textContent('#share-said');
  if (link !== page.url()) fail(`${tag} copy link gave ${link}, the page is at ${page.url()}`);
  const clipboard = await page.evaluate(() => navigator.clipboard.readText()).catch(() => null);
  if (/^Copied/.test(said) && clipboard !== link) fail(`${tag} the page says "${said}" but the clipboard holds ${clipboard}`);

  await page.selectOption('#embed-view', 'neuron');
  await page.evaluate(() => { document.querySelector('#share-said').textContent = ''; });
  await page.click('button[data-action="copy-embed"]');
  await page.waitForFunction(() => (document.querySelector('#share-said')?.textContent ?? '') !== '');
  const code = await page.inputValue('#share-text');
  const src = /^<iframe src="([^"]+)"[^>]* title="[^"]+"[^>]*><\/iframe>$/.exec(code)?.[1]?.replaceAll('&amp;', '&');
  if (!src || !src.includes('embed=neuron') || !src.includes('neuron=2')) fail(`${tag} embed code: ${code}`);
  if (src) {
    await page.goto(src);
    await settled(page);
    const shown = await page.evaluate(() => ({ embed: document.body.dataset.embed, channel: document.querySelector('.neuron-view')?.dataset.channel }));
    if (shown.embed !== 'neuron' || shown.channel !== '2') fail(`${tag} the embed code's address shows ${JSON.stringify(shown)}`);
  }
  console.log(`${tag} copy link and copy embed code ("${said.trim()}"): the embedded address shows neuron 2 alone`);
}
