// GET /v1/leases page by page, against a real reservoird and SQLite file: every lease exactly once,
// in order of network, family and address (numeric, not text: .9 before .10, ::f before ::10),
// whatever the page size; `next` only while more follow; bad limits and cursors refused (114).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseIp } from '../../src/address.js';
import { LEASES_PAGE_DEFAULT, LEASES_PAGE_MAX, type LeasesResponse, type LeaseView } from '../../src/protocol.js';
import { rawRequest } from '../support/http.js';
import { netconf } from '../support/netconf.js';
import { type TestDaemon, addOk, delOk, op, startTestDaemon } from './support.js';

let td: TestDaemon;

/** Made in this order, listed in name order: dual stack, IPv6 only, IPv4 only. */
const NETWORKS: Record<string, unknown[]> = {
  'page-b': [[{ subnet: '10.41.0.0/24' }], [{ subnet: 'fd00:41::/64' }]],
  'page-c': [[{ subnet: 'fd00:42::/120' }]],
  'page-a': [[{ subnet: '10.40.0.0/24' }]],
};
const PER_NETWORK = 18;
/** Asked for by IP after the dynamic ones, so that address order differs from the order of the ADDs. */
const REQUESTED_IN_A = ['10.40.0.200', '10.40.0.100', '10.40.0.30'];

const conf = (network: string) => netconf(network, td.socket, { ranges: NETWORKS[network] });

/** "network ip" of every lease the ADDs handed out, in the order the listing must have. */
let expected: string[];

function order(a: string, b: string): number {
  const [netA, ipA] = a.split(' ') as [string, string];
  const [netB, ipB] = b.split(' ') as [string, string];
  const x = parseIp(ipA);
  const y = parseIp(ipB);
  return netA < netB ? -1 : netA > netB ? 1 : x.family - y.family || (x.value < y.value ? -1 : x.value > y.value ? 1 : 0);
}

const key = (lease: LeaseView) => `${lease.network} ${lease.ip}`;

/** Follow `next` to the end; fails rather than loop forever. */
async function allPages(query: Record<string, string | undefined>): Promise<LeasesResponse[]> {
  const pages: LeasesResponse[] = [];
  let after: string | undefined;
  do {
    const page = await op<LeasesResponse>(td.socket, 'leases', { query: { ...query, after } });
    pages.push(page);
    after = page.next;
    if (pages.length > 1000) throw new Error('more than 1000 pages: the cursor does not advance');
  } while (after !== undefined);
  return pages;
}

function expectFullPages(pages: readonly LeasesResponse[], limit: number): void {
  for (const page of pages.slice(0, -1)) {
    expect(page.leases).toHaveLength(limit);
    expect(page.next).toEqual(expect.any(String));
  }
  const last = pages[pages.length - 1]!;
  expect(last.leases.length).toBeGreaterThan(0);
  expect(last.leases.length).toBeLessThanOrEqual(limit);
  expect(last).not.toHaveProperty('next');
}

async function badRequest(query: Record<string, string>): Promise<string> {
  const answer = await rawRequest({ socket: td.socket, method: 'GET', path: `/v1/leases?${new URLSearchParams(query)}` });
  expect(answer.status, `${JSON.stringify(query)} -> ${answer.text}`).toBe(400);
  expect(answer.json.code, answer.text).toBe(114);
  return answer.json.msg as string;
}

beforeAll(async () => {
  td = await startTestDaemon();
  const leased: string[] = [];
  for (const network of Object.keys(NETWORKS)) {
    for (let i = 0; i < PER_NETWORK; i++) {
      for (const ip of await addOk(conf(network), { containerId: `${network}-${i}` })) leased.push(`${network} ${ip}`);
    }
  }
  for (const [i, ip] of REQUESTED_IN_A.entries()) {
    expect(await addOk(conf('page-a'), { containerId: `page-a-asked-${i}`, args: { IP: ip } })).toEqual([ip]);
    leased.push(`page-a ${ip}`);
  }
  expected = [...leased].sort(order);
  // the IPv6 networks reached ::10, where text order and address order part
  expect(expected).toContain('page-c fd00:42::10');
});

afterAll(async () => {
  await td?.close();
});

describe('GET /v1/leases, page by page', () => {
  it('pages of 3 over all networks: every lease once, in network, family and address order', async () => {
    const pages = await allPages({ limit: '3' });
    expectFullPages(pages, 3);
    const listed = pages.flatMap((page) => page.leases);
    expect(listed.map(key)).toEqual(expected);
    // the same lease views as one page holding them all
    const whole = await op<LeasesResponse>(td.socket, 'leases', { query: { limit: String(LEASES_PAGE_MAX) } });
    expect(whole).toEqual({ leases: listed });
  });

  it('pages of one network, IPv4 before IPv6, never leaving the network', async () => {
    for (const network of Object.keys(NETWORKS)) {
      for (const limit of [1, 3, 7]) {
        const pages = await allPages({ network, limit: String(limit) });
        expectFullPages(pages, limit);
        expect(pages.flatMap((page) => page.leases).map(key), `${network}, pages of ${limit}`).toEqual(expected.filter((k) => k.startsWith(`${network} `)));
      }
    }
  });

  it('next only while more follow: a limit of exactly all the leases is one page without next', async () => {
    const exact = await op<LeasesResponse>(td.socket, 'leases', { query: { limit: String(expected.length) } });
    expect(exact.leases.map(key)).toEqual(expected);
    expect(exact).not.toHaveProperty('next');
    const oneShort = await op<LeasesResponse>(td.socket, 'leases', { query: { limit: String(expected.length - 1) } });
    expect(oneShort.next).toEqual(expect.any(String));
    const rest = await op<LeasesResponse>(td.socket, 'leases', { query: { limit: String(expected.length - 1), after: oneShort.next } });
    expect(rest.leases.map(key)).toEqual(expected.slice(-1));
    expect(rest).not.toHaveProperty('next');
    // under the default page size, the old single answer
    expect(expected.length).toBeLessThan(LEASES_PAGE_DEFAULT);
    const all = await op<LeasesResponse>(td.socket, 'leases');
    expect(Object.keys(all)).toEqual(['leases']);
    expect(all.leases.map(key)).toEqual(expected);
  });

  it('a cursor is a position, not an offset: releasing a listed lease does not skip the next one', async () => {
    const network = 'page-d';
    const c = () => netconf(network, td.socket, { ranges: [[{ subnet: '10.43.0.0/24' }]] });
    const ips: string[] = [];
    for (let i = 0; i < 6; i++) ips.push(...(await addOk(c(), { containerId: `page-d-${i}` })));
    const first = await op<LeasesResponse>(td.socket, 'leases', { query: { network, limit: '3' } });
    expect(first.leases.map((l) => l.ip)).toEqual(ips.slice(0, 3));
    await delOk(c(), { containerId: 'page-d-0' });
    await delOk(c(), { containerId: 'page-d-2' });
    const second = await op<LeasesResponse>(td.socket, 'leases', { query: { network, limit: '3', after: first.next } });
    expect(second.leases.map((l) => l.ip)).toEqual(ips.slice(3, 6));
    expect(second).not.toHaveProperty('next');
  });

  it('a limit that is not a whole number from 1 to 10000: 400, code 114, saying what to send', async () => {
    for (const limit of ['0', '-1', '1.5', '1e3', '01', ' 5', 'ten', '', '10001', '99999999999999999999']) {
      expect(await badRequest({ limit })).toMatch(/^limit must be a whole number from 1 to 10000 \(default 1000\), not "/);
    }
    const max = await op<LeasesResponse>(td.socket, 'leases', { query: { network: 'page-a', limit: '10000' } });
    expect(max.leases.map(key)).toEqual(expected.filter((k) => k.startsWith('page-a ')));
  });

  it('a malformed cursor: 400, code 114, saying to pass next back unchanged', async () => {
    const { next } = await op<LeasesResponse>(td.socket, 'leases', { query: { limit: '3' } });
    const cursor = (text: string) => Buffer.from(text).toString('base64url');
    expect(Buffer.from(next!, 'base64url').toString()).toBe('page-a/4/0a280004'); // what the tests below mangle
    const malformed = [
      '',
      'not a cursor',
      `${next}=`,
      `${next}A`,
      `${next!.slice(0, -1)}`,
      Buffer.from('page-a/4/0a280004').toString('base64'), // plain base64 padding
      cursor('page-a/4/0a28004'), // short key
      cursor('page-a/4/0A280004'), // upper case hex
      cursor('page-a/6/0a280004'), // IPv6 with an IPv4-wide key
      cursor('page-a/5/0a280004'),
      cursor('page-a/4/0a280004/x'),
      cursor('/4/0a280004'),
      cursor('-bad-name/4/0a280004'),
      cursor('page-a/4/0a28\u00e904'),
      cursor('x'.repeat(500)),
    ];
    for (const after of malformed) {
      expect(await badRequest({ limit: '3', after }), JSON.stringify(after)).toMatch(
        /^after="[^"]*" is not a lease cursor; pass the "next" value of the previous page unchanged, or leave after= out to start from the first lease$/,
      );
    }
    // a cursor of one network's listing, used for another
    expect(await badRequest({ network: 'page-b', after: next! })).toBe(
      'the cursor in after= continues a listing of network "page-a", not "page-b"; pass the "next" value of this listing\'s previous page, or leave after= out to start from the first lease',
    );
    // a well-formed cursor at an address nobody holds (any more) is a position like any other
    const gap = await op<LeasesResponse>(td.socket, 'leases', { query: { network: 'page-a', limit: '2', after: cursor('page-a/4/0a280063') } });
    expect(gap.leases.map(key)).toEqual(['page-a 10.40.0.100', 'page-a 10.40.0.200']);
  });
});
