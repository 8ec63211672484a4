// A synthetic addon catalogue for the scale benchmark's search curve: names, display names and
// descriptions drawn from one vocabulary, so that a word's share of the catalogue stays the same
// at every size and a bigger catalogue means more matches, as in a real one.
import type pg from 'pg';

/** Words of addon listings; each description holds 12 of them, so one word is in about 5 % of addons. */
export const VOCABULARY = `shop cart checkout payment gateway invoice tax shipping label tracking order refund
coupon discount loyalty reward points gift card wishlist review rating product catalog inventory stock
warehouse supplier barcode price currency converter subscription recurring billing membership donation
booking calendar appointment event ticket seat reservation table menu restaurant delivery pickup courier
map store locator analytics dashboard report chart metric funnel conversion heatmap session recording
audit log backup restore migration import export csv spreadsheet feed sitemap search filter facet
autocomplete translation language locale region timezone newsletter email campaign automation drip sms
push notification chat support helpdesk ticketing faq knowledge base forum comment community social
share instagram facebook twitter youtube video gallery slider carousel lightbox image optimizer
compression lazy cdn cache performance speed security firewall captcha spam login sso password
twofactor account profile avatar badge quiz survey form builder contact popup banner countdown timer
announcement cookie consent privacy gdpr accessibility contrast font icon theme header footer layout
grid column widget sidebar breadcrumb pagination blog post article podcast audio music playlist recipe
nutrition fitness workout weather news ticker crypto wallet auction marketplace vendor dropship print
demand personalization recommendation upsell crosssell bundle sample preorder backorder affiliate
referral partner influencer seo meta schema canonical redirect link checker uptime monitor status page
changelog roadmap feedback poll vote`
  .split(/\s+/)
  .filter(Boolean);

/**
 * Inserts addons number `from` to `to - 1` (deterministic text: the same numbers always read the
 * same), then vacuums and analyzes the table, as autovacuum would soon after a bulk load.
 */
export async function insertCatalogue(db: pg.Client, from: number, to: number): Promise<void> {
  if (to <= from) return;
  await db.query(
    `WITH v AS (SELECT $1::text[] AS w, cardinality($1::text[]) AS n)
     INSERT INTO "Addon" (id, name, "displayName", description, author, category, "updatedAt")
     SELECT gen_random_uuid(),
            format('%s-%s-%s', w[1 + (hashint4(g * 3 + 1) & 2147483647) % n], w[1 + (hashint4(g * 3 + 2) & 2147483647) % n], g),
            initcap(w[1 + (hashint4(g * 3 + 1) & 2147483647) % n] || ' ' || w[1 + (hashint4(g * 3 + 2) & 2147483647) % n]),
            (SELECT string_agg(w[1 + (hashint4(g * 100 + k) & 2147483647) % n], ' ') FROM generate_series(1, 12) k),
            'bench', (ARRAY['ECOMMERCE', 'ANALYTICS', 'MARKETING', 'COMMUNICATION'])[1 + g % 4]::"AddonCategory", now()
       FROM v, generate_series($2::int, $3::int - 1) g`,
    [VOCABULARY, from, to],
  );
  await db.query('VACUUM ANALYZE "Addon"');
}

/**
 * What the search curve asks, by kind: an addon's exact name (one match), a two-word phrase (a
 * few dozen per 50,000), one common word (about 5 % of the catalogue) and a word fragment.
 */
export function searchTerms(size: number): { kind: string; terms: string[] }[] {
  const pick = (i: number) => VOCABULARY[(i * 37) % VOCABULARY.length];
  return [
    {
      kind: 'exact name',
      terms: Array.from({ length: 10 }, (_, i) => `-${Math.floor((size * (i + 1)) / 11)}`),
    },
    { kind: 'two-word phrase', terms: Array.from({ length: 10 }, (_, i) => `${pick(i)} ${pick(i + 50)}`) },
    { kind: 'common word', terms: Array.from({ length: 10 }, (_, i) => pick(i + 100)) },
    { kind: 'word fragment', terms: Array.from({ length: 10 }, (_, i) => pick(i + 150).slice(1, 5)) },
  ];
}
