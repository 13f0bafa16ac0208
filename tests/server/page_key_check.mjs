// The page against a server that wants an API key: picking a file without one shows the
// server's message and opens the key box; typing the key checks the same file again.
// Usage: node page_key_check.mjs URL IMAGE KEY   (prints one JSON line)
import { chromium } from "playwright-core";

const [url, imagePath, key] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
const out = {};
try {
  const page = await browser.newPage();
  await page.goto(url);
  await page.setInputFiles("#file", imagePath);
  await page.waitForFunction(() => !document.querySelector("#error").hidden, null, { timeout: 60000 });
  out.error = await page.textContent("#error");
  out.keyBoxOpen = await page.evaluate(() => document.querySelector("#key-box").open);
  await page.fill("#api-key", key);
  await page.dispatchEvent("#api-key", "change");
  await page.waitForFunction(() => document.querySelector("#verdict").dataset.verdict !== "" && !document.querySelector("#result").hidden, null, { timeout: 120000 });
  out.verdict = await page.evaluate(() => document.querySelector("#verdict").dataset.verdict);
  out.errorHidden = await page.evaluate(() => document.querySelector("#error").hidden);
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
