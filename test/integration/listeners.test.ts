// reservoird serves only its unix socket: no TCP or UDP port, so nothing can reach it, and
// nothing can change a lease, from the network.
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { useDaemonProcess } from '../support/hooks.js';

/** Inodes of the sockets a process holds open. */
function socketInodes(pid: number): Set<string> {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (match) inodes.add(match[1]!);
    } catch {
      // the fd closed while we looked
    }
  }
  return inodes;
}

/** Local addresses of inet sockets (any state) in /proc/PID/net/{tcp,tcp6,udp,udp6} with one of the inodes. */
function inetSockets(pid: number, inodes: Set<string>): string[] {
  const found: string[] = [];
  for (const table of ['tcp', 'tcp6', 'udp', 'udp6']) {
    const lines = readFileSync(`/proc/${pid}/net/${table}`, 'utf8').trim().split('\n').slice(1);
    for (const line of lines) {
      const fields = line.trim().split(/\s+/);
      if (inodes.has(fields[9]!)) found.push(`${table} ${fields[1]}`);
    }
  }
  return found;
}

describe('reservoird listeners', () => {
  const daemon = useDaemonProcess('listeners');

  it('holds its unix socket and no inet socket at all', () => {
    const { pid, socket } = daemon.process;
    const inodes = socketInodes(pid);
    expect(inodes.size).toBeGreaterThan(0);
    expect(inetSockets(pid, inodes)).toEqual([]);
    const unix = readFileSync(`/proc/${pid}/net/unix`, 'utf8');
    const listening = unix.split('\n').filter((line) => line.includes(socket));
    expect(listening.some((line) => inodes.has(line.trim().split(/\s+/)[6]!))).toBe(true);
  });
});
