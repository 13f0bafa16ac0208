// The page's own player for a Clear Key–encrypted video, as a site with DRM plays one: Media
// Source Extensions for the bytes, Encrypted Media Extensions (org.w3.clearkey, which Chromium
// ships without Widevine) for the key. The file (tests/video/media.py face-cenc.mp4) has no pssh
// box, so no 'encrypted' event comes: the session asks for the key by its ID ('keyids').
// playClearKey(video, url, {codecs, key, kid}) resolves once the video plays.
const b64url = (hex) => btoa(String.fromCharCode(...hex.match(/../g).map((h) => parseInt(h, 16))))
  .replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');

window.playClearKey = async (video, url, {codecs, key, kid}) => {
  const access = await navigator.requestMediaKeySystemAccess('org.w3.clearkey',
    [{initDataTypes: ['keyids'], videoCapabilities: [{contentType: codecs}]}]);
  const keys = await access.createMediaKeys();
  await video.setMediaKeys(keys);
  const session = keys.createSession();
  const licensed = new Promise((resolve, reject) => session.addEventListener('message', () => {
    const license = {keys: [{kty: 'oct', k: b64url(key), kid: b64url(kid)}]};
    session.update(new TextEncoder().encode(JSON.stringify(license))).then(resolve, reject);
  }, {once: true}));
  await session.generateRequest('keyids', new TextEncoder().encode(JSON.stringify({kids: [b64url(kid)]})));
  await licensed;
  const source = new MediaSource();
  video.src = URL.createObjectURL(source);
  await new Promise((resolve) => source.addEventListener('sourceopen', resolve, {once: true}));
  const buffer = source.addSourceBuffer(codecs);
  buffer.appendBuffer(await (await fetch(url)).arrayBuffer());
  await new Promise((resolve, reject) => {
    buffer.addEventListener('updateend', resolve, {once: true});
    buffer.addEventListener('error', () => reject(new Error('the encrypted video could not be appended')), {once: true});
  });
  source.endOfStream();
  video.loop = true;
  await video.play();
};
