/**
 * Test hosts in network namespaces the test makes itself (`ip netns`): each host a namespace with
 * its own address on a private /24, joined by veth pairs to a bridge in this (the test's)
 * namespace, which has the subnet's last address and so reaches every host directly. All traffic
 * stays on these links. `teardown` deletes the namespaces (their veth ends and the peers go with
 * them) and the bridge.
 */
import { execFileSync } from 'node:child_process';

export interface TestHost {
  readonly name: string;
  readonly address: string;
}

export interface TestNetwork {
  readonly hosts: readonly TestHost[];
  /** This namespace's address on the bridge (the address hosts see the test's requests from). */
  readonly gateway: string;
  /** The /24, e.g. "10.231.7.0/24". */
  readonly subnet: string;
  teardown(): void;
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Makes `count` hosts. Names and the subnet derive from this process's pid, so two runs do not collide. */
export function makeNetwork(count: number): TestNetwork {
  const tag = `pt${process.pid % 100_000}`;
  const third = process.pid % 250;
  const subnet = `10.231.${third}`;
  const bridge = `${tag}br`;
  const hosts: TestHost[] = [];
  const teardown = (): void => {
    for (let i = 0; i < count; i++) {
      try {
        ip('netns', 'del', `${tag}h${i}`);
      } catch {
        // not made
      }
    }
    try {
      ip('link', 'del', bridge);
    } catch {
      // not made
    }
  };
  try {
    ip('link', 'add', bridge, 'type', 'bridge');
    ip('addr', 'add', `${subnet}.254/24`, 'dev', bridge);
    ip('link', 'set', bridge, 'up');
    for (let i = 0; i < count; i++) {
      const ns = `${tag}h${i}`;
      const outside = `${tag}v${i}`;
      const address = `${subnet}.${i + 1}`;
      ip('netns', 'add', ns);
      ip('link', 'add', outside, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
      ip('link', 'set', outside, 'master', bridge);
      ip('link', 'set', outside, 'up');
      ip('-n', ns, 'addr', 'add', `${address}/24`, 'dev', 'eth0');
      ip('-n', ns, 'link', 'set', 'eth0', 'up');
      ip('-n', ns, 'link', 'set', 'lo', 'up');
      hosts.push({ name: ns, address });
    }
  } catch (error) {
    teardown();
    throw error;
  }
  return { hosts, gateway: `${subnet}.254`, subnet: `${subnet}.0/24`, teardown };
}
