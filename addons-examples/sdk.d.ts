/**
 * ThemePress addon SDK: what an addon script sees inside the sandbox.
 *
 * An addon is ONE self-contained script (no `require`, no `import`). It assigns `module.exports`
 * (or fills `exports`) with the entries below. Use it from a JavaScript addon with:
 *
 *   // @ts-check
 *   /// <reference path="../sdk.d.ts" />
 *   /** @type {ThemePress.AddonModule} *\/
 *   module.exports = { functions: { hello: (data, ctx) => `hello ${ctx.site.id}` } };
 *
 * Every entry may be sync or async. Inputs and outputs travel as JSON: return plain data.
 * See src/sandbox/README.md for limits and error codes.
 *
 * ALL OR NOTHING. The storage writes (`ctx.storage.set` / `delete`) and emitted events
 * (`ctx.events.emit`) of one call (a function, handler, hook or widget render) are held until the
 * call returns, then committed together in one PostgreSQL transaction. A call that throws, times out,
 * runs out of memory or dies with its worker or server commits nothing. The call's own reads see its
 * writes; other calls see them only once it has returned. A `ctx.addons.call` dependency's effects
 * commit with the call that made it (and are dropped if the dependency fails). An SDK call still
 * running when the call returns is not part of it: await every write and emit. So: write and emit in
 * whatever order reads best, and drop repeated event deliveries with a marker written in the same
 * call. Not isolation: two calls running at once can both read a key before either writes it.
 */

declare namespace ThemePress {
  type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

  /** Markup that `html` inserts verbatim. Made only by `html` and `raw`. */
  interface SafeHtml {
    readonly __html: string;
    toString(): string;
    toJSON(): string;
  }

  /**
   * Tagged template that escapes each interpolated value for where it lands: text, quoted or unquoted
   * attribute values (unquoted ones get quoted). URL attributes (`href`, `src`, ...) whose value comes
   * from an interpolation only accept http(s), mailto, tel and relative URLs. Interpolating into an
   * `on*` event handler, a `<script>`/`<style>` body, a tag name or an attribute name throws, unless
   * the value is `SafeHtml` (or empty). Arrays are rendered item by item; null, undefined and false
   * render nothing.
   */
  type HtmlTag = (strings: TemplateStringsArray, ...values: unknown[]) => SafeHtml;

  /** Marks trusted markup. Never pass config, input or user data to it. */
  type RawHtml = (markup: unknown) => SafeHtml;

  /** Error thrown by SDK calls; `code` is e.g. PERMISSION_DENIED, BAD_USER_INPUT, RATE_LIMITED. */
  interface AddonSdkError extends Error {
    name: 'AddonSdkError';
    code: string;
  }

  interface StorageListOptions {
    prefix?: string;
    /** 1 to 1000; default 100. */
    limit?: number;
    /** The `cursor` of the previous page. */
    cursor?: string;
  }

  /**
   * Per addon and site key-value storage. Keys: 1-200 characters. Values: JSON, at most 256 KB.
   * Writes commit when the call returns successfully (see "ALL OR NOTHING" above); one call may hold
   * at most 8 MiB of writes and event data until then.
   */
  interface Storage {
    /** Permission `storage.read`. Resolves to null for a missing key. */
    get<T = Json>(key: string): Promise<T | null>;
    /** Permission `storage.write`. */
    set(key: string, value: Json): Promise<void>;
    /** Permission `storage.write`. Resolves to whether the key existed. */
    delete(key: string): Promise<boolean>;
    /** Permission `storage.read`. Keys in code point order, this call's own writes included. */
    list(options?: StorageListOptions): Promise<{ keys: string[]; cursor: string | null }>;
  }

  interface EmitOptions {
    /**
     * 1-200 characters. An event already emitted with this key by this addon on this site (kept at
     * least 24 hours) is returned instead of a new one (`duplicate: true`). Two calls committing the
     * same new key at once: the second fails with CONFLICT and commits nothing.
     */
    idempotencyKey?: string;
  }

  interface Events {
    /**
     * Permission `events.emit`; `name` must be listed in the manifest's `emits`. Data: at most 64 KB,
     * checked against the declared schema now. Stored when the call returns successfully (see "ALL
     * OR NOTHING" above); `id` is the id it will have.
     */
    emit(name: string, data?: Json, options?: EmitOptions): Promise<{ id: string; duplicate: boolean }>;
  }

  interface Addons {
    /**
     * Calls a function of another addon installed on the same site. `addonName` must be one of the
     * manifest's `dependencies`. Nested calls are limited to a depth of 4.
     */
    call<T = Json>(addonName: string, functionName: string, data?: Json): Promise<T>;
  }

  interface HttpRequestInit {
    /** GET (default), HEAD, POST, PUT, PATCH, DELETE or OPTIONS. */
    method?: string;
    headers?: Record<string, string>;
    /** At most 1 MB. */
    body?: string;
  }

  interface HttpResponse {
    readonly status: number;
    readonly statusText: string;
    readonly ok: boolean;
    readonly url: string;
    /** Lower-case header names. */
    readonly headers: Readonly<Record<string, string>>;
    text(): Promise<string>;
    json<T = Json>(): Promise<T>;
  }

  interface Http {
    /**
     * Permission `http.fetch`; the URL's host must match the manifest's `httpAllow`. Redirects are
     * returned, not followed. Bounded by the call's remaining time (at most 10 s) and 1 MB of body.
     */
    fetch(url: string, init?: HttpRequestInit): Promise<HttpResponse>;
  }

  /** The `ctx` argument of every entry. Frozen. Valid only while its call runs. */
  interface Context<Config = Json> {
    /** This installation's configuration. */
    readonly config: Config;
    readonly site: { readonly id: string };
    readonly addon: { readonly name: string; readonly version: string };
    readonly installationId: string | null;
    readonly requestId: string | null;
    /** Log lines are returned to the platform with the result, up to the addon's log limit. */
    log(...args: unknown[]): void;
    debug(...args: unknown[]): void;
    info(...args: unknown[]): void;
    warn(...args: unknown[]): void;
    error(...args: unknown[]): void;
    readonly storage: Storage;
    readonly events: Events;
    readonly addons: Addons;
    readonly http: Http;
    readonly html: HtmlTag;
    readonly raw: RawHtml;
    /** Alias of `raw`. */
    readonly unsafeHTML: RawHtml;
    /**
     * The bundle's WebAssembly binary, compiled inside the sandbox; null when the addon has none.
     * Instantiate it with `new WebAssembly.Instance(ctx.wasm.module, imports)`.
     */
    readonly wasm: { readonly module: WebAssembly.Module } | null;
  }

  type Awaitable<T> = T | Promise<T>;

  /** What a widget returns: markup (a string is trusted as is) or the parts. */
  type WidgetOutput =
    | SafeHtml
    | string
    | { html: SafeHtml | string; css?: SafeHtml | string | null; javascript?: SafeHtml | string | null };

  type WidgetRender<Config = Json> = (
    config: Config,
    context: Json,
    ctx: Context<Config>,
  ) => Awaitable<WidgetOutput>;

  interface AddonModule<Config = Json> {
    /** Callable functions: `(data, ctx) => result`. */
    functions?: Record<string, (data: Json, ctx: Context<Config>) => Awaitable<unknown>>;
    /** Widgets: a render function, or an object with a `render` method. */
    widgets?: Record<string, WidgetRender<Config> | { render: WidgetRender<Config> }>;
    /** Event handlers: `(event, ctx) => void`. */
    handlers?: Record<string, (event: Json, ctx: Context<Config>) => Awaitable<unknown>>;
    /** Lifecycle hooks; all optional. */
    hooks?: {
      install?(ctx: Context<Config>): Awaitable<unknown>;
      upgrade?(fromVersion: string | null, ctx: Context<Config>): Awaitable<unknown>;
      uninstall?(ctx: Context<Config>): Awaitable<unknown>;
    };
  }
}

// `module`, `exports` and `console` exist in the sandbox too; they are not declared here because
// TypeScript's own CommonJS support and lib.dom already type them. Annotate the export instead:
//   /** @type {ThemePress.AddonModule<{ currency: string }>} */
//   module.exports = { functions: { ... } };

/** Same as `ctx.html`, available at the top level of the script. */
declare const html: ThemePress.HtmlTag;
/** Same as `ctx.raw`. */
declare const raw: ThemePress.RawHtml;
