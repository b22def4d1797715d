// One SQL batch against a MariaDB server over TCP with Debian's `mariadb` client: what the demo,
// the e2e tests and the benchmark use to read and write through the announced members. The
// password goes through the environment (MYSQL_PWD), never the command line.
import { execFile } from 'node:child_process';

export interface SqlTarget {
  /** `host:port`, as announced under services/mysql. */
  readonly address: string;
  readonly user: string;
  readonly password: string;
  readonly database: string;
}

export interface SqlResult {
  readonly ok: boolean;
  /** Tab-separated rows, no column names. */
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `statement`; never throws (a failure is `ok: false` with the client's message). */
export function runSql(target: SqlTarget, statement: string, timeoutMs = 15_000): Promise<SqlResult> {
  const i = target.address.lastIndexOf(':');
  const host = i < 0 ? target.address : target.address.slice(0, i);
  const port = i < 0 ? '3306' : target.address.slice(i + 1);
  return new Promise((resolve) => {
    execFile(
      'mariadb',
      [
        `--host=${host}`,
        `--port=${port}`,
        `--user=${target.user}`,
        '--connect-timeout=3',
        '-N',
        '-B',
        target.database,
        '-e',
        statement,
      ],
      { timeout: timeoutMs, env: { ...process.env, MYSQL_PWD: target.password } },
      (err, stdout, stderr) => resolve({ ok: err === null, stdout: String(stdout), stderr: String(stderr) }),
    );
  });
}
