/**
 * Operation names the server itself sends or documents: the dashboard's (src/dashboard/public), the
 * CLI's, the seed's and keys:create's. They always get their own metric label. A unit test checks
 * the list against those sources, so it cannot drift.
 */
export const KNOWN_OPERATION_NAMES: readonly string[] = [
  // dashboard
  'DashboardViewer',
  'DashboardSites',
  'DashboardInstallations',
  'DashboardCatalogue',
  'DashboardStats',
  'DashboardSeries',
  'DashboardDeliveries',
  'DashboardExecutions',
  'DashboardRecentEvents',
  'DashboardEventsAfter',
  'DashboardRetryDelivery',
  'DashboardEvents',
  'DashboardInstallationSafety',
  // CLI, seed, keys:create
  'CliViewer',
  'RegisterAddon',
  'InstallAddon',
  'UpgradeAddon',
  'DeleteAddonVersion',
  'RegistryUsage',
  'AddonLatestVersion',
  'Viewer',
  'AddonVersions',
  'Sites',
  'CreateSite',
  'Installations',
  'CreateSiteKey',
  'SiteWidgets',
  'KeysCreateSite',
  'KeysCreateApiKey',
];

const NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/** Label when an operation has no name. */
export const ANONYMOUS_OPERATION = 'anonymous';
/** Label of every name the server does not know and admits no more. */
export const OTHER_OPERATION = 'other';

export interface OperationNameLabelOptions {
  known?: Iterable<string>;
  /** Names one API key may add beyond the known ones. */
  perKeyBudget?: number;
  /** Names all keys together may add. */
  maxAdmitted?: number;
}

/**
 * Bounds the `operation_name` label: clients choose operation names, and every distinct value is a
 * time series in Prometheus. Known names (the dashboard's, the CLI's) always keep their label; an
 * authenticated caller's other names are admitted up to a budget per key and a total, first come;
 * anonymous callers admit nothing, so they cannot use up the slots legitimate names need. Everything
 * else is `other` (no name: `anonymous`). An admitted name is labelled for every caller afterwards:
 * that adds no series.
 */
export class OperationNameLabels {
  private readonly known: ReadonlySet<string>;
  private readonly admitted = new Set<string>();
  private readonly perKey = new Map<string, number>();
  private readonly perKeyBudget: number;
  private readonly maxAdmitted: number;

  constructor(options: OperationNameLabelOptions = {}) {
    this.known = new Set(options.known ?? KNOWN_OPERATION_NAMES);
    this.perKeyBudget = options.perKeyBudget ?? 20;
    this.maxAdmitted = options.maxAdmitted ?? 200;
  }

  /**
   * The label for `name` sent by the caller holding `keyId` (null: anonymous or not authenticated).
   */
  label(name: string | null | undefined, keyId: string | null): string {
    if (!name) return ANONYMOUS_OPERATION;
    if (!NAME.test(name)) return OTHER_OPERATION;
    if (this.known.has(name) || this.admitted.has(name)) return name;
    if (keyId === null || this.admitted.size >= this.maxAdmitted) return OTHER_OPERATION;
    const used = this.perKey.get(keyId) ?? 0;
    if (used >= this.perKeyBudget) return OTHER_OPERATION;
    this.perKey.set(keyId, used + 1);
    this.admitted.add(name);
    return name;
  }
}
