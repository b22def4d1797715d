// Test harness for discovery: real nginx and Apache processes (Debian's nginx and apache2,
// installed idempotently by scripts/ensure-deps.sh), each on a random loopback port with its own
// prefix directory, config, pid file and logs: never the system instance.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from './cli.js';
import { freePort, onFreePort, PortTaken, saysPortTaken } from './ports.js';
import { WaitAborted, waitFor } from './wait.js';

export { freePort, WaitAborted, waitFor };

const execFileP = promisify(execFile);

let ensured: Promise<void> | undefined;

/** Installs nginx and apache2 if missing; fails (never skips) with the reason when it cannot. */
export function ensureWebPackages(): Promise<void> {
  ensured ??= execFileP('bash', [join(ROOT, 'scripts/ensure-deps.sh'), 'nginx', 'apache2'], {
    timeout: 300_000,
  }).then(
    () => undefined,
    (err: Error & { stderr?: string }) => {
      throw new Error(
        `nginx and apache2 are needed for discovery tests and could not be installed: ${err.stderr ?? err.message}`,
      );
    },
  );
  return ensured;
}

export interface HttpAnswer {
  readonly status: number;
  readonly body: string;
  readonly headers: Record<string, string | string[] | undefined>;
}

/** One GET on a fresh connection; rejects on a connection error or after `timeoutMs`. */
export function httpGet(url: string, timeoutMs = 3000): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

async function ownDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  // nginx workers and Apache children run unprivileged: they must reach files in here.
  await chmod(dir, 0o755);
  return dir;
}

function exitOf(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
}

// ——— nginx ———

export interface RunningNginx {
  readonly port: number;
  readonly dir: string;
  /** Included in the http block: `conf.d/*.conf`. */
  readonly confDir: string;
  readonly url: string;
  /** Validates this instance's whole configuration (for --check-cmd). */
  readonly checkCmd: string;
  /** Reloads this instance (for --reload-cmd). */
  readonly reloadCmd: string;
  /** How many reloads (SIGHUP) nginx has received so far, from its error log. */
  reloads(): Promise<number>;
  /**
   * How many reloads have taken effect: the old worker stopped accepting connections, so every
   * new request meets the new configuration (one worker process).
   */
  appliedReloads(): Promise<number>;
  errorLog(): Promise<string>;
  stop(): Promise<void>;
}

/**
 * nginx proxying 127.0.0.1:PORT to `upstream` (which a file in confDir must define: `files` gets
 * nginx's own directory and returns confDir's files), with fleetts' recommended proxy settings:
 * retry another server on connection errors, connect timeout 1 s.
 */
export async function startNginx(options: {
  upstream: string;
  files: (dir: string) => Record<string, string>;
}): Promise<RunningNginx> {
  await ensureWebPackages();
  const dir = await ownDir('fleetts-nginx-');
  const confDir = join(dir, 'conf.d');
  await mkdir(confDir, { mode: 0o755 });
  await mkdir(join(dir, 'tmp'));
  for (const [name, text] of Object.entries(options.files(dir))) await writeFile(join(confDir, name), text);
  try {
    return await onFreePort(1, ([port]) => startNginxOn(port ?? 0, dir, confDir, options.upstream));
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

async function startNginxOn(
  port: number,
  dir: string,
  confDir: string,
  upstream: string,
): Promise<RunningNginx> {
  const conf = `worker_processes 1;
error_log ${dir}/error.log notice;
pid ${dir}/nginx.pid;
events { worker_connections 128; }
http {
    access_log off;
    client_body_temp_path ${dir}/tmp/body;
    proxy_temp_path ${dir}/tmp/proxy;
    fastcgi_temp_path ${dir}/tmp/fastcgi;
    uwsgi_temp_path ${dir}/tmp/uwsgi;
    scgi_temp_path ${dir}/tmp/scgi;
    include ${confDir}/*.conf;
    server {
        listen 127.0.0.1:${port};
        location / {
            proxy_pass http://${upstream};
            proxy_next_upstream error timeout;
            proxy_connect_timeout 1s;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
`;
  await writeFile(join(dir, 'nginx.conf'), conf);
  // A failed attempt's log would count as this one's reloads.
  await rm(join(dir, 'error.log'), { force: true });
  const base = `nginx -p ${dir}/ -c ${dir}/nginx.conf -e ${dir}/error.log`;
  const child = spawn(
    'nginx',
    ['-p', `${dir}/`, '-c', `${dir}/nginx.conf`, '-e', `${dir}/error.log`, '-g', 'daemon off;'],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const exited = exitOf(child);
  const errorLog = (): Promise<string> => readFile(join(dir, 'error.log'), 'utf8').catch(() => '');
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
    await rm(dir, { recursive: true, force: true });
  };
  const url = `http://127.0.0.1:${port}/`;
  try {
    await waitFor(
      `nginx to listen on ${url}`,
      async () => {
        if (child.exitCode !== null) {
          const why = `nginx exited: ${stderr}${await errorLog()}`;
          throw saysPortTaken(why) ? new PortTaken(why) : new WaitAborted(why);
        }
        // nginx writes its pid file once it has bound its port: whatever answers then is this nginx.
        if (!(await ownsPidFile(join(dir, 'nginx.pid'), child))) return undefined;
        return (await httpGet(url, 1000)).status;
      },
      { intervalMs: 50 },
    );
  } catch (err) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
    throw err;
  }
  return {
    port,
    dir,
    confDir,
    url,
    checkCmd: `${base} -t -q`,
    reloadCmd: `${base} -s reload`,
    errorLog,
    async reloads() {
      return ((await errorLog()).match(/signal 1 \(SIGHUP\) received/g) ?? []).length;
    },
    async appliedReloads() {
      return ((await errorLog()).match(/gracefully shutting down/g) ?? []).length;
    },
    stop,
  };
}

// ——— Apache ———

export interface RunningApache {
  readonly port: number;
  readonly address: string;
  readonly url: string;
  /** The page it serves at `/`. */
  readonly page: string;
  /** Starts (again) on the same port; resolves once it answers. */
  start(): Promise<void>;
  /** Stops it (SIGTERM) and waits for the exit. */
  stopServer(): Promise<void>;
  /** Stops it and removes its directory. */
  cleanup(): Promise<void>;
}

export async function startApache(options: { page: string }): Promise<RunningApache> {
  await ensureWebPackages();
  const dir = await ownDir('fleetts-apache-');
  const htdocs = join(dir, 'htdocs');
  await mkdir(htdocs, { mode: 0o755 });
  await writeFile(join(htdocs, 'index.html'), options.page, { mode: 0o644 });
  const root = process.getuid?.() === 0;
  const pidFile = join(dir, 'httpd.pid');
  const configure = (port: number): Promise<void> =>
    writeFile(
      join(dir, 'httpd.conf'),
      `ServerRoot ${dir}
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule dir_module /usr/lib/apache2/modules/mod_dir.so
LoadModule mime_module /usr/lib/apache2/modules/mod_mime.so
Listen 127.0.0.1:${port}
ServerName 127.0.0.1
${root ? 'User www-data\nGroup www-data' : ''}
PidFile ${pidFile}
Mutex file:${dir} default
ErrorLog ${dir}/error.log
LogLevel warn
TypesConfig /etc/mime.types
StartServers 1
ServerLimit 1
ThreadsPerChild 8
MaxRequestWorkers 8
MinSpareThreads 1
MaxSpareThreads 8
DocumentRoot ${htdocs}
<Directory ${htdocs}>
    Require all granted
</Directory>
DirectoryIndex index.html
`,
    );
  let port = 0;
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  const url = (): string => `http://127.0.0.1:${port}/`;
  const stopServer = async (): Promise<void> => {
    if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  const start = async (): Promise<void> => {
    await stopServer();
    await rm(pidFile, { force: true });
    await rm(join(dir, 'error.log'), { force: true });
    const c = spawn('apache2', ['-f', join(dir, 'httpd.conf'), '-DFOREGROUND'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    c.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    child = c;
    exited = exitOf(c);
    await waitFor(
      `Apache to answer on ${url()}`,
      async () => {
        if (c.exitCode !== null) {
          const log = await readFile(join(dir, 'error.log'), 'utf8').catch(() => '');
          const why = `apache2 exited (${c.exitCode}): ${stderr}${log}`;
          throw saysPortTaken(why) ? new PortTaken(why) : new WaitAborted(why);
        }
        // Its pid file is written once it has bound the port: whatever answers then is this Apache.
        if (!(await ownsPidFile(pidFile, c))) return undefined;
        const res = await httpGet(url(), 1000);
        return res.status === 200 ? true : undefined;
      },
      { intervalMs: 25 },
    );
  };
  try {
    await onFreePort(1, async ([p]) => {
      port = p ?? 0;
      await configure(port);
      try {
        await start();
      } catch (err) {
        await stopServer();
        throw err;
      }
    });
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    port,
    address: `127.0.0.1:${port}`,
    url: url(),
    page: options.page,
    start,
    stopServer,
    async cleanup() {
      await stopServer();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** True once `pidFile` names `child` (a server writes it after binding its ports). */
async function ownsPidFile(pidFile: string, child: ChildProcess): Promise<boolean> {
  const text = await readFile(pidFile, 'utf8').catch(() => '');
  return text.trim() === String(child.pid);
}
