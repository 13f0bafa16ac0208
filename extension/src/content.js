// The content script's entry. A page can receive it twice (declared for a site, then
// injected again on a right-click or when the user switches the site on): start once.
import {start} from './inpage.js';

if (!globalThis.__unmaskStarted) {
  globalThis.__unmaskStarted = true;
  start();
}
