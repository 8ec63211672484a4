import { Field, ID, ObjectType } from 'type-graphql';

@ObjectType({ simpleResolvers: true, description: 'A tenant: one website that installs addons.' })
export class Site {
  @Field(() => ID)
  id!: string;

  @Field(() => String)
  name!: string;

  @Field(() => String, { nullable: true })
  domain!: string | null;

  @Field(() => Date)
  createdAt!: Date;
}
