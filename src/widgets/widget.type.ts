import { Field, ObjectType } from 'type-graphql';

@ObjectType({ simpleResolvers: true, description: 'A rendered widget, ready to mount.' })
export class WidgetOutput {
  @Field(() => String, {
    description: 'Markup inside the widget root element <div data-tp-widget="...">; mount it whole.',
  })
  html!: string;

  @Field(() => String, { description: 'CSS scoped to the root element (cannot style the rest of the page).' })
  css!: string;

  @Field(() => String, { description: 'Script of the widget (run it in the widget document or a sandbox).' })
  javascript!: string;

  @Field(() => String, {
    description: 'Identifies this render: equal keys mean equal output until the next invalidation.',
  })
  cacheKey!: string;

  @Field(() => String, { description: 'The addon version rendered (the one installed on the site).' })
  version!: string;

  @Field(() => Boolean, { description: 'True when served from the cache.' })
  cached!: boolean;
}
