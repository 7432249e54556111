/**
 * The external app servers of a `portico up` config (`apps.NAME.command`), each with its upstream
 * group: app/external.ts runs the process, this glue turns "accepting" and "gone" into group
 * membership (one member: the command's socket, over HTTP). The group is an app group, so while
 * the command boots or restarts a request waits for it (up to 5 s, then 503 with Retry-After,
 * proxy/index.ts), and a request cut by a crash is retried as for app workers.
 */
import { ExternalApp } from '../app/external.js';
import type { ResolvedConfig, ResolvedExternalApp } from '../config/resolved.js';
import { UpstreamGroup } from '../edge/handlers/proxy/upstream.js';
import type { MemberMirror } from './apps.js';

interface Running {
  readonly app: ResolvedExternalApp;
  readonly group: UpstreamGroup;
  readonly runner: ExternalApp;
}

/** The upstream URL of a command's socket (the proxy speaks HTTP to it). */
const socketUrl = (app: ResolvedExternalApp): string =>
  app.socket.kind === 'unix' ? `unix:${app.socket.path}` : `http://${(app.socket.host || '127.0.0.1').includes(':') ? `[${app.socket.host}]` : app.socket.host || '127.0.0.1'}:${app.socket.port}`;

export class ExternalApps {
  readonly #running: Running[] = [];

  /** `mirror`: the edge worker processes, told of the command's socket coming and going (`workers` > 1). */
  constructor(config: ResolvedConfig, mirror: MemberMirror | null = null) {
    for (const app of Object.values(config.externalApps)) {
      const upstream = config.upstreams[app.upstream];
      if (!upstream) throw new Error(`app "${app.name}" has no upstream group (the config resolver should have made one)`);
      const group = new UpstreamGroup(upstream);
      const url = socketUrl(app);
      const runner = new ExternalApp(app, {
        up: () => {
          group.addServer(url);
          mirror?.addMember(app.upstream, url);
        },
        // Gone at once (a dead process answers nothing): the pool is destroyed, not drained.
        down: () => {
          void group.removeServer(url, 0);
          void mirror?.removeMember(app.upstream, url, 0);
        },
      });
      this.#running.push({ app, group, runner });
    }
  }

  /** The groups by upstream name ("app:flask"), shared by every generation. */
  get groups(): ReadonlyMap<string, UpstreamGroup> {
    return new Map(this.#running.map((r) => [r.app.upstream, r.group]));
  }

  /** Starts every command; resolves once each accepts connections, or throws when one cannot start. */
  async start(): Promise<void> {
    await Promise.all(this.#running.map((r) => r.runner.start()));
  }

  describe(): string[] {
    return this.#running.map((r) => `app ${r.app.name}: ${r.app.command.join(' ')} (pid ${r.runner.pid ?? '-'}), on ${socketUrl(r.app)}`);
  }

  /** SIGTERM to every command, SIGKILL after its grace; resolves once all are gone. */
  async stop(): Promise<void> {
    await Promise.all(
      this.#running.map(async (r) => {
        await r.runner.stop();
        await r.group.close();
      }),
    );
  }

  /** Last resort on exit: SIGKILL to every command's process group, synchronously. */
  killAll(): void {
    for (const r of this.#running) r.runner.kill();
  }
}
