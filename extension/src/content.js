// The content script's entry. A page can receive it twice (declared for a site, then
// injected again on a right-click or when the user switches the site on): start once.
import {inspect, start} from './inpage.js';

if (!globalThis.__unmaskStarted) {
  globalThis.__unmaskStarted = true;
  start();
  // Builds for the browser tests only (build.mjs testHooks): what the layer shows, readable in
  // this script's isolated world, which the page's scripts cannot reach.
  if (UNMASK_TEST_HOOKS) globalThis.unmaskInspect = inspect;
}
