import { Field, ID, ObjectType } from 'type-graphql';
import { GraphQLJSON } from 'graphql-scalars';

@ObjectType({
  simpleResolvers: true,
  description: 'An addon installed on a site, pinned to one published version.',
})
export class Installation {
  @Field(() => ID)
  id!: string;

  @Field(() => GraphQLJSON, {
    description: "Config, validated against the addon's schema, defaults applied.",
  })
  config!: unknown;

  @Field(() => Boolean)
  enabled!: boolean;

  @Field(() => [String], {
    description:
      "Permissions the site has granted: the pinned version's at install, plus every new one accepted on a move to another version.",
  })
  grantedPermissions!: string[];

  @Field(() => Date)
  createdAt!: Date;

  @Field(() => Date)
  updatedAt!: Date;
}

@ObjectType({ simpleResolvers: true })
export class AddonInstallResult {
  @Field(() => Boolean)
  success!: boolean;

  @Field(() => String)
  message!: string;

  @Field(() => Installation)
  installation!: Installation;
}
