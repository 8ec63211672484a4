import { Field, ObjectType } from 'type-graphql';

@ObjectType({ simpleResolvers: true, description: 'A rendered widget, ready to mount.' })
export class WidgetOutput {
  @Field(() => String, {
    description:
      'Markup inside the widget root element <div data-tp-widget="...">; mount it whole. Sanitized with an allow-list: no scripts, styles, frames, event handler attributes, srcdoc, form targets or script URLs, and its tags are balanced, so nothing in it closes the root element early.',
  })
  html!: string;

  @Field(() => String, {
    description:
      'CSS scoped to the root element: every selector is the root element, its children or its descendants, so none matches an element outside it (no siblings of the root, :root, html, body or :has() reaching out); page-global at-rules are dropped.',
  })
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
