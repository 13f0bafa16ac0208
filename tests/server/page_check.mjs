// Drive the server's page in Chromium: pick an image, see the face boxes over it, the face
// list, verdict, heatmap with its legend, models and provenance; pick a corrupt file, see the
// server's message; drop a video, see the timeline; pick a picture without a face, see the
// no-face sentence and no box.
// Usage: node page_check.mjs URL IMAGE CORRUPT VIDEO NOFACE   (prints one JSON line)
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { chromium } from "playwright-core";

const [url, imagePath, corruptPath, videoPath, noFacePath] = process.argv.slice(2);
const origin = new URL(url).origin;
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
const out = { requests_to_other_hosts: [], console_errors: [] };
try {
  const page = await browser.newPage();
  page.on("request", (r) => { if (!r.url().startsWith(origin) && !r.url().startsWith("blob:") && !r.url().startsWith("data:")) out.requests_to_other_hosts.push(r.url()); });
  page.on("pageerror", (e) => out.console_errors.push(String(e)));
  await page.goto(url);

  // 1. Pick an image.
  await page.setInputFiles("#file", imagePath);
  await page.waitForFunction(() => document.querySelector("#verdict").dataset.verdict !== "" && !document.querySelector("#result").hidden, null, { timeout: 120000 });
  await page.waitForFunction(() => !document.querySelector("#heatmap").hidden && document.querySelector("#heatmap").naturalWidth > 0, null, { timeout: 120000 });
  out.image = await page.evaluate(() => ({
    verdict: document.querySelector("#verdict").dataset.verdict,
    shown: document.querySelector("#verdict").textContent,
    confidence: document.querySelector("#confidence").textContent,
    basis: document.querySelector("#basis").textContent,
    members: [...document.querySelectorAll("#members tbody tr")].map((tr) => tr.cells[0].textContent),
    findings: [...document.querySelectorAll("#provenance li")].map((li) => li.textContent),
    provenance: document.querySelector("#provenance-summary").textContent,
    provenanceTier: document.querySelector("#provenance-summary").dataset.tier,
    provenanceDetails: Object.fromEntries([...document.querySelectorAll("#provenance-details dd")].map((dd) => [dd.dataset.field, dd.textContent])),
    heatmapWidth: document.querySelector("#heatmap").naturalWidth,
    previewWidth: document.querySelector("#preview").naturalWidth,
    boxes: document.querySelectorAll("#boxes rect.face-box").length,
    boxLabels: [...document.querySelectorAll("#boxes text")].map((t) => t.textContent),
    // The boxes' layer covers the picture as displayed.
    boxesFit: (() => {
      const a = document.querySelector("#boxes").getBoundingClientRect();
      const b = document.querySelector("#preview").getBoundingClientRect();
      return Math.abs(a.width - b.width) < 1 && Math.abs(a.height - b.height) < 1 && b.width > 0;
    })(),
    faceRows: [...document.querySelectorAll("#faces tbody tr")].map((tr) => tr.cells[1].textContent),
    legendShown: !document.querySelector("#legend").hidden,
    legend: document.querySelector("#legend-text").textContent,
    rule: document.querySelector("#rule").textContent,
    whatIsChecked: document.querySelector("#what-is-checked").textContent,
  }));

  // 2. Pick a corrupt file: the page shows the server's explanation.
  await page.setInputFiles("#file", corruptPath);
  await page.waitForFunction(() => !document.querySelector("#error").hidden, null, { timeout: 60000 });
  out.corrupt = { error: await page.textContent("#error"), resultHidden: await page.evaluate(() => document.querySelector("#result").hidden) };

  // 3. Drop a video onto the drop zone.
  const b64 = readFileSync(videoPath).toString("base64");
  await page.evaluate(({ b64, name }) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const dt = new DataTransfer();
    dt.items.add(new File([bytes], name, { type: "video/webm" }));
    document.querySelector("#drop").dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
  }, { b64, name: basename(videoPath) });
  await page.waitForFunction(() => !document.querySelector("#frames-box").hidden, null, { timeout: 120000 });
  out.video = await page.evaluate(() => ({
    verdict: document.querySelector("#verdict").dataset.verdict,
    frames: document.querySelectorAll("#frames tbody tr").length,
    timelineSegments: document.querySelectorAll("#timeline > div").length,
    note: document.querySelector("#video-note").textContent,
  }));

  // 4. Pick a picture without a face.
  await page.setInputFiles("#file", noFacePath);
  await page.waitForFunction(() => document.querySelector("#verdict").dataset.verdict === "no_face" && !document.querySelector("#result").hidden, null, { timeout: 120000 });
  out.noFace = await page.evaluate(() => ({
    shown: document.querySelector("#verdict").textContent,
    summary: document.querySelector("#confidence").textContent,
    boxes: document.querySelectorAll("#boxes rect.face-box").length,
    facesHidden: document.querySelector("#faces-box").hidden,
    heatmapHidden: document.querySelector("#heatmap").hidden,
  }));
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
