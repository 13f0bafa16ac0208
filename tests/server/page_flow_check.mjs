// Drive the server's page in Chromium through one scenario and print what it shows (one JSON
// line). The requests the page makes go to the real server; only their timing is changed, by
// holding one until the scenario releases it.
//
//   node page_flow_check.mjs URL race FACE NOFACE FACE2
//     a late /check and a late /explain for an earlier file, released after a newer file's
//     result is shown: what the page shows afterwards
//   node page_flow_check.mjs URL scene SCENE     tags, face list, legend, the heat layer's pixels
//   node page_flow_check.mjs URL noface NOFACE   what a picture without a face shows
//   node page_flow_check.mjs URL error FILE      the error shown for a bad file, and its preview
//   node page_flow_check.mjs URL shot PICTURE OUT.png   a screenshot of the whole page (docs/screenshots)
import { chromium } from "playwright-core";

const [url, scenario, ...paths] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
const out = { console_errors: [] };
const LONG = { timeout: 120000 };

// What the page shows now.
const shown = (page) => page.evaluate(() => {
  const q = (s) => document.querySelector(s);
  return {
    verdict: q("#verdict").dataset.verdict,
    label: q("#verdict").textContent,
    confidence: q("#confidence").textContent,
    resultHidden: q("#result").hidden,
    ruleHidden: q("#rule").hidden,
    status: q("#status").textContent,
    boxes: document.querySelectorAll("#boxes rect.face-box").length,
    tags: [...document.querySelectorAll("#boxes text")].map((t) => t.textContent),
    tagX: [...document.querySelectorAll("#boxes rect.face-box")].map((r) => Number(r.getAttribute("x"))),
    rows: [...document.querySelectorAll("#faces tbody tr")].map((tr) => [...tr.cells].map((c) => c.textContent)),
    facesNote: q("#faces-note").textContent,
    heatmapHidden: q("#heatmap").hidden,
    heatmapSrc: q("#heatmap").getAttribute("src"),
    legendHidden: q("#legend").hidden,
    legend: q("#legend-text").textContent,
    error: q("#error").hidden ? null : q("#error").textContent,
    errorPreviewShown: !q("#error-preview").hidden && q("#error-preview").naturalWidth > 0,
    text: q("main").innerText,
  };
});

// Hold the first request to `path` until release() is called; `seen` resolves when it is
// held, `settled` when it has finished or failed (aborted by the page) after its release.
function holdFirst(page, path) {
  let release, markSeen, markSettled;
  const released = new Promise((r) => { release = r; });
  const seen = new Promise((r) => { markSeen = r; });
  const settled = new Promise((r) => { markSettled = r; });
  let held = null;
  page.on("requestfinished", (r) => { if (r === held) markSettled("finished"); });
  page.on("requestfailed", (r) => { if (r === held) markSettled("failed"); });
  page.route((u) => new URL(u).pathname === path, async (route) => {
    if (held !== null) return route.continue();
    held = route.request();
    markSeen();
    await released;
    try { await route.continue(); } catch (e) { markSettled("aborted"); }
  });
  return { release, seen, settled };
}

try {
  const page = await browser.newPage();
  page.on("pageerror", (e) => out.console_errors.push(String(e)));
  await page.goto(url);

  if (scenario === "race") {
    const [face, noFace, face2] = paths;
    // 1. A late /check: the first file's answer comes after the second file's result.
    const check = holdFirst(page, "/api/v1/check");
    await page.setInputFiles("#file", face);
    await check.seen;
    await page.setInputFiles("#file", noFace);
    await page.waitForFunction(() => document.querySelector("#verdict").dataset.verdict === "no_face", null, LONG);
    out.before = await shown(page);
    check.release();
    out.lateCheck = await check.settled;
    await page.waitForTimeout(500); // room for a late answer to be drawn, were it used
    out.afterLateCheck = await shown(page);
    await page.unroute("**/*");

    // 2. A late /explain: the first file's heat comes after the second file's heat is drawn.
    const explain = holdFirst(page, "/api/v1/explain");
    await page.setInputFiles("#file", face);
    await explain.seen;
    await page.setInputFiles("#file", face2);
    await page.waitForFunction(() => !document.querySelector("#heatmap").hidden, null, LONG);
    out.heatBefore = await shown(page);
    explain.release();
    out.lateExplain = await explain.settled;
    await page.waitForTimeout(500);
    out.heatAfter = await shown(page);
  } else if (scenario === "scene") {
    await page.setInputFiles("#file", paths[0]);
    await page.waitForFunction(() => !document.querySelector("#heatmap").hidden && document.querySelector("#heatmap").naturalWidth > 0, null, LONG);
    out.page = await shown(page);
    // The heat layer: its own pixels, read back (transparent away from the faces?).
    out.heat = await page.evaluate(() => {
      const img = document.querySelector("#heatmap");
      const c = document.createElement("canvas");
      c.width = img.naturalWidth;
      c.height = img.naturalHeight;
      const ctx = c.getContext("2d");
      ctx.drawImage(img, 0, 0);
      const { data } = ctx.getImageData(0, 0, c.width, c.height);
      const alpha = (x0, y0, x1, y1) => { // the largest alpha in a rectangle (layer pixels)
        let top = 0;
        for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) top = Math.max(top, data[4 * (y * c.width + x) + 3]);
        return top;
      };
      const stack = document.querySelector(".stack");
      return {
        width: c.width, height: c.height,
        maxAlpha: alpha(0, 0, c.width, c.height),
        bottomBandAlpha: alpha(0, Math.round(c.height * 0.85), c.width, c.height), // below every face's crop
        // the page's boxes are drawn after (over) the heat
        order: [...stack.children].map((e) => e.id),
        heatFits: (() => {
          const a = img.getBoundingClientRect();
          const b = document.querySelector("#preview").getBoundingClientRect();
          return Math.abs(a.width - b.width) < 1 && Math.abs(a.height - b.height) < 1;
        })(),
      };
    });
    await page.uncheck("#show-boxes");
    out.boxesUnticked = await page.evaluate(() => getComputedStyle(document.querySelector("#boxes")).display);
  } else if (scenario === "noface") {
    await page.setInputFiles("#file", paths[0]);
    await page.waitForFunction(() => document.querySelector("#verdict").dataset.verdict === "no_face" && !document.querySelector("#result").hidden, null, LONG);
    out.page = await shown(page);
  } else if (scenario === "error") {
    await page.setInputFiles("#file", paths[0]);
    await page.waitForFunction(() => !document.querySelector("#error").hidden, null, LONG);
    await page.waitForFunction(() => { const i = document.querySelector("#error-preview"); return !i.getAttribute("src") || i.complete; }, null, LONG);
    out.page = await shown(page);
  } else if (scenario === "shot") { // docs/screenshots/server-page.png: node page_flow_check.mjs URL shot PICTURE OUT.png
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.setInputFiles("#file", paths[0]);
    await page.waitForFunction(() => !document.querySelector("#heatmap").hidden && document.querySelector("#heatmap").naturalWidth > 0, null, LONG);
    await page.screenshot({ path: paths[1], fullPage: true });
  } else {
    throw new Error(`unknown scenario ${scenario}`);
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
