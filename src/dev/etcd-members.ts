// What each etcd member of a dev cluster says about itself (etcd's maintenance Status call, asked of
// that member alone): whether it answers, and whether it is the raft leader. `dev status`, the
// dev-cluster tests and the benchmarks read the topology through this.
import { Etcd3 } from 'etcd3';
import type { Clock } from '../lib/clock.js';
import type { EtcdMemberPlan } from './plan.js';

export interface EtcdMemberStatus {
  readonly name: string;
  /** The host running it; undefined for the external member. */
  readonly host: string | undefined;
  readonly clientUrl: string;
  /** `down`: no answer within the timeout (stopped, powered off, partitioned or frozen). */
  readonly state: 'leader' | 'follower' | 'down';
  /** etcd's member id (hex) when it answered. */
  readonly memberId?: string;
  readonly raftTerm?: number;
}

/** Asks every member at once; each answer (or its absence) comes from that member only. */
export async function etcdMemberStatuses(
  members: readonly EtcdMemberPlan[],
  clock: Clock,
  timeoutMs = 1_000,
): Promise<EtcdMemberStatus[]> {
  return Promise.all(
    members.map(async (m): Promise<EtcdMemberStatus> => {
      const base = { name: m.name, host: m.host, clientUrl: m.clientUrl };
      const client = new Etcd3({ hosts: m.clientUrl, dialTimeout: timeoutMs });
      try {
        const s = await client.maintenance.status({ deadline: clock.now() + timeoutMs });
        const id = String(s.header.member_id);
        return {
          ...base,
          state: s.leader !== '0' && String(s.leader) === id ? 'leader' : 'follower',
          memberId: BigInt(id).toString(16),
          raftTerm: Number(s.raftTerm),
        };
      } catch {
        return { ...base, state: 'down' };
      } finally {
        client.close();
      }
    }),
  );
}

/** The leader among the statuses (undefined while there is none, or none answers). */
export function etcdLeader(statuses: readonly EtcdMemberStatus[]): EtcdMemberStatus | undefined {
  return statuses.find((s) => s.state === 'leader');
}
