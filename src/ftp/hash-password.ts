// SHA-512 crypt ($6$) hashes for pam_pwdfile, made by `openssl passwd -6` (Node has no crypt(3)).
// The password goes to openssl on stdin only: never in argv (visible in ps) nor in the environment.
import { spawn } from 'node:child_process';
import { FleetError } from '../lib/errors.js';
import { isSha512CryptHash } from './ftp-users.js';

export interface HashOptions {
  /** A fixed salt (tests); absent: openssl draws a random one. */
  readonly salt?: string;
  readonly openssl?: string;
}

export function hashPassword(password: string, options: HashOptions = {}): Promise<string> {
  const args = ['passwd', '-6', ...(options.salt === undefined ? [] : ['-salt', options.salt]), '-stdin'];
  const bin = options.openssl ?? 'openssl';
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', (e) =>
      reject(
        new FleetError(
          'ftp_hash_failed',
          `cannot run ${bin} to hash the password (${e.message}); install openssl`,
          {
            cause: e,
          },
        ),
      ),
    );
    child.on('close', (code) => {
      const hash = out.trim();
      if (code === 0 && isSha512CryptHash(hash)) resolve(hash);
      else
        reject(
          new FleetError(
            'ftp_hash_failed',
            `\`${bin} ${args.join(' ')}\` failed (exit ${code ?? 'signal'}): ${err.trim() || 'no SHA-512 hash in its output'}`,
          ),
        );
    });
    // openssl -stdin reads one password per line: the password has no newline (checkPassword).
    child.stdin.on('error', () => undefined);
    child.stdin.end(`${password}\n`);
  });
}
