import { Field, ID, ObjectType, registerEnumType } from 'type-graphql';
import { ApiKeyRole } from '../generated/prisma/enums.js';

registerEnumType(ApiKeyRole, {
  name: 'ApiKeyRole',
  description: 'admin: platform; developer: publishes; site: installs.',
});

@ObjectType({ simpleResolvers: true, description: 'An API key as listed: never the key itself.' })
export class ApiKey {
  @Field(() => ID)
  id!: string;

  @Field(() => String)
  name!: string;

  @Field(() => String, { description: 'First characters of the key, to recognise it.' })
  prefix!: string;

  @Field(() => ApiKeyRole)
  role!: ApiKeyRole;

  @Field(() => ID, { nullable: true })
  siteId!: string | null;

  @Field(() => Date)
  createdAt!: Date;

  @Field(() => Date, { nullable: true })
  revokedAt!: Date | null;
}

@ObjectType({ simpleResolvers: true })
export class CreatedApiKey {
  @Field(() => String, { description: 'The key. Shown once: only its hash is stored.' })
  key!: string;

  @Field(() => ApiKey)
  apiKey!: ApiKey;
}

@ObjectType({ simpleResolvers: true, description: 'Who the presented key belongs to.' })
export class Viewer {
  @Field(() => String, { description: 'anonymous, admin, developer or site.' })
  role!: string;

  @Field(() => ID, { nullable: true })
  siteId!: string | null;

  @Field(() => ID, { nullable: true })
  developerId!: string | null;
}
