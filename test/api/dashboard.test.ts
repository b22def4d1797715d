// The dashboard's files at /ui (src/api/dashboard.ts): served without the token (they hold no data),
// with a policy that keeps the page to its own files and this fleetd; everything else, and any
// other path under /ui, still needs the token. The page itself is tested in a browser
// (test/dev/dashboard-browser.test.ts).
import { readFile } from 'node:fs/promises';
import test from 'ava';
import { startCluster } from './fixture.js';

const TOKEN = 's3cret-s3cret-s3cret';
const ui = (file: string) => readFile(new URL(`../../ui/${file}`, import.meta.url), 'utf8');

test('GET /ui and its files need no token; they come with a content policy', async (t) => {
  const c = await startCluster({ auth: { kind: 'token', token: TOKEN } });
  t.teardown(() => c.close());
  const cases: [string, string, string][] = [
    ['/ui', 'text/html', 'index.html'],
    ['/ui/', 'text/html', 'index.html'],
    ['/ui/app.js', 'text/javascript', 'app.js'],
    ['/ui/style.css', 'text/css', 'style.css'],
  ];
  for (const [url, type, file] of cases) {
    const res = await c.apps.a.inject({ method: 'GET', url });
    t.is(res.statusCode, 200, url);
    t.true(String(res.headers['content-type']).startsWith(type), url);
    t.regex(String(res.headers['content-security-policy']), /default-src 'none'; script-src 'self'/);
    t.is(res.headers['x-content-type-options'], 'nosniff');
    t.is(res.body, await ui(file), url);
  }
  t.regex((await ui('index.html')).replace(/\s+/g, ' '), /<script src="\/ui\/app.js" defer><\/script>/);
});

test('the data the page reads, and other paths under /ui, still need the token', async (t) => {
  const c = await startCluster({ auth: { kind: 'token', token: TOKEN } });
  t.teardown(() => c.close());
  for (const [method, url] of [
    ['GET', '/v1/machines'],
    ['GET', '/v1/events'],
    ['GET', '/ui/../v1/units'],
    ['GET', '/ui/secret'],
    ['PUT', '/ui'],
  ] as const) {
    const res = await c.apps.a.inject({ method, url });
    t.is(res.statusCode, 401, `${method} ${url}`);
  }
  const ok = await c.apps.a.inject({
    method: 'GET',
    url: '/v1/machines',
    headers: { authorization: `Bearer ${TOKEN}` },
  });
  t.is(ok.statusCode, 200);
});
