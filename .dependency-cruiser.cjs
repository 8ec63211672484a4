/**
 * Layer rules, run by `npm run lint` (docs/architecture.md explains the layers).
 * @type {import('dependency-cruiser').IConfiguration}
 */
const DOMAINS = '(addons|auth|cli|dashboard|events|executions|installations|seed|sites|storage|widgets)';
const TRANSPORT =
  'node_modules/(graphql|type-graphql|fastify|@fastify/[^/]+|@apollo/[^/]+|@as-integrations/[^/]+|graphql-ws|@envelop/[^/]+)/';

module.exports = {
  forbidden: [
    {
      name: 'foundation-imports-no-domain',
      comment:
        'sandbox/, infrastructure/, shared/, errors/ and config/ serve every domain, so they import none.',
      severity: 'error',
      from: { path: '^src/(sandbox|infrastructure|shared|errors|config)/' },
      to: { path: `^src/${DOMAINS}/` },
    },
    {
      name: 'foundation-imports-no-transport-layer',
      comment: 'The foundation knows nothing of how requests arrive (graphql/, http/, app/).',
      severity: 'error',
      from: { path: '^src/(sandbox|infrastructure|shared|errors|config)/' },
      to: { path: '^src/(graphql|http|app)/' },
    },
    {
      name: 'services-know-no-transport',
      comment: 'Services and repositories are called by GraphQL, REST and the CLI alike.',
      severity: 'error',
      from: { path: '\\.(service|repository)\\.ts$' },
      to: { path: [TRANSPORT, '^src/(graphql|http)/'], dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'domains-do-not-import-app',
      comment: 'app/ wires the domains together; a domain importing it would be a cycle through the root.',
      severity: 'error',
      from: { path: `^src/${DOMAINS}/` },
      to: { path: '^src/app/' },
    },
    {
      name: 'no-test-code-in-src',
      severity: 'error',
      from: { path: '^src/', pathNot: '\\.test\\.ts$' },
      to: { path: ['^test/', '^bench/'] },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^src/generated/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default'],
    },
  },
};
