// The content script's entry. A page can receive it twice (declared for a site, then
// injected again on a right-click or when the user switches the site on): start once.
import {inspect, start} from './inpage.js';
import {state} from './ui.js';

if (!globalThis.__unmaskStarted) {
  globalThis.__unmaskStarted = true;
  start();
  // Builds for the browser tests only (build.mjs testHooks): what the layer shows, readable in
  // this script's isolated world, which the page's scripts cannot reach.
  if (UNMASK_TEST_HOOKS) {
    globalThis.unmaskInspect = inspect;
    // What one drawn element (badge, panel) shows, without inspect()'s layout reads: the
    // benchmarks' observers call it on every change of the layer (bench/browser_bench.mjs).
    inspect.shown = (node) => state.get(node) || null;
  }
}
