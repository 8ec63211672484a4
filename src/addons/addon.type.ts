import { Field, Float, ID, InputType, Int, ObjectType, registerEnumType } from 'type-graphql';
import { GraphQLJSON } from 'graphql-scalars';
import { AddonCategory, WidgetCategory } from '../generated/prisma/enums.js';
import { PageInfo } from '../graphql/page-info.type.js';

registerEnumType(AddonCategory, { name: 'AddonCategory', description: 'What an addon is for.' });
registerEnumType(WidgetCategory, { name: 'WidgetCategory', description: 'How a widget is used on a page.' });

@ObjectType({
  simpleResolvers: true,
  description: 'A function an addon exposes to sites (executeAddonFunction).',
})
export class ApiEndpoint {
  @Field(() => ID)
  id!: string;

  @Field(() => String, { description: 'Name declared in the manifest, e.g. process-payment.' })
  name!: string;

  @Field(() => String)
  description!: string;

  @Field(() => Boolean, { description: 'True when it has no side effects; only these run through Query.' })
  readonly!: boolean;

  @Field(() => GraphQLJSON, { nullable: true, description: 'JSON Schema its input is validated against.' })
  inputSchema!: unknown;
}

@ObjectType({ simpleResolvers: true, description: 'A server-rendered UI component of an addon.' })
export class Widget {
  @Field(() => ID)
  id!: string;

  @Field(() => String)
  name!: string;

  @Field(() => String)
  displayName!: string;

  @Field(() => String)
  description!: string;

  @Field(() => WidgetCategory)
  category!: WidgetCategory;

  @Field(() => GraphQLJSON, { description: 'JSON Schema of the widget config, with defaults.' })
  configSchema!: unknown;

  @Field(() => String, { nullable: true })
  previewImage!: string | null;

  @Field(() => Boolean)
  responsive!: boolean;

  @Field(() => [String], { description: 'Context fields the rendered output depends on.' })
  varyOn!: string[];
}

@ObjectType({ simpleResolvers: true, description: 'Another addon this version needs, as a semver range.' })
export class AddonDependency {
  @Field(() => String, { description: 'Name of the addon depended on.' })
  name!: string;

  @Field(() => String, { description: 'Semver range, e.g. ^1.2.0.' })
  range!: string;
}

@ObjectType({ simpleResolvers: true, description: 'One immutable published version of an addon.' })
export class AddonVersion {
  @Field(() => ID)
  id!: string;

  @Field(() => String)
  version!: string;

  @Field(() => GraphQLJSON, { description: 'The manifest as validated and normalised at publish time.' })
  manifest!: unknown;

  @Field(() => [String])
  permissions!: string[];

  @Field(() => String, { description: 'SHA-256 of the JavaScript source.' })
  sourceSha256!: string;

  @Field(() => Date)
  createdAt!: Date;
}

@ObjectType({
  simpleResolvers: true,
  description: 'An addon in the registry; version-specific fields describe its latest version.',
})
export class Addon {
  @Field(() => ID)
  id!: string;

  @Field(() => String)
  name!: string;

  @Field(() => String)
  displayName!: string;

  @Field(() => String)
  description!: string;

  @Field(() => String)
  author!: string;

  @Field(() => AddonCategory)
  category!: AddonCategory;

  @Field(() => Date)
  createdAt!: Date;

  @Field(() => Date)
  updatedAt!: Date;
}

@ObjectType({ simpleResolvers: true })
export class AddonEdge {
  @Field(() => String)
  cursor!: string;

  @Field(() => Addon)
  node!: Addon;
}

@ObjectType({ simpleResolvers: true, description: 'A page of addons (Relay connection).' })
export class AddonConnection {
  @Field(() => [AddonEdge])
  edges!: AddonEdge[];

  @Field(() => PageInfo)
  pageInfo!: PageInfo;
}

@InputType({ description: 'A version to publish: the manifest and the bundled JavaScript source.' })
export class RegisterAddonInput {
  @Field(() => GraphQLJSON, {
    description: 'Addon manifest (name, version, category, widgets, functions, ...).',
  })
  manifest!: unknown;

  @Field(() => String, { description: 'Self-contained JavaScript module source.' })
  source!: string;

  @Field(() => String, { nullable: true, description: 'Optional WebAssembly module, base64.' })
  wasmBase64?: string | null;
}

@ObjectType({ simpleResolvers: true })
export class RegisterAddonResult {
  @Field(() => Addon)
  addon!: Addon;

  @Field(() => AddonVersion)
  version!: AddonVersion;
}

@ObjectType({
  simpleResolvers: true,
  description: "What a developer's addons take of the registry, and the most it keeps (REGISTRY_MAX_*).",
})
export class RegistryUsage {
  @Field(() => ID)
  developerId!: string;

  @Field(() => Float, {
    description: 'Bytes of published versions: source, WebAssembly module, manifest JSON.',
  })
  storedBytes!: number;

  @Field(() => Float, { description: 'REGISTRY_MAX_BYTES_PER_DEVELOPER.' })
  maxBytes!: number;

  @Field(() => Int, { description: 'Addons the developer owns.' })
  addons!: number;

  @Field(() => Int, { description: 'REGISTRY_MAX_ADDONS_PER_DEVELOPER.' })
  maxAddons!: number;

  @Field(() => Int, { description: 'REGISTRY_MAX_VERSIONS_PER_ADDON.' })
  maxVersionsPerAddon!: number;
}
