// Group name -> gid from /etc/group (Node has no getgrnam); a number passes through.
import { readFileSync } from 'node:fs';

export function getgrnam(group: string): number {
  if (/^\d+$/.test(group)) return Number(group);
  for (const line of readFileSync('/etc/group', 'utf8').split('\n')) {
    const [name, , gid] = line.split(':');
    if (name === group && gid !== undefined) return Number(gid);
  }
  throw new Error(`socket group "${group}" does not exist; create it (groupadd ${group}) or pick another`);
}
