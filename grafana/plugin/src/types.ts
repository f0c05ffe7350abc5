import { DataSourceJsonData } from '@grafana/data';
import { DataQuery } from '@grafana/schema';

/** What a query asks rankd for. */
export type QueryType = 'influencer' | 'average' | 'top' | 'suspicious' | 'gains' | 'movers';

/** Which end of the gains a movers query lists. */
export type MoversOrder = 'gainers' | 'losers';

/** The query model the backend reads: {queryType, pk, n, offset, limit, window, order}. */
export interface RankdQuery extends DataQuery {
  queryType?: QueryType;
  /**
   * Influencer pk, up to 5 comma-separated, or a dashboard variable such as
   * $pk, multi-value too (influencer, gains).
   */
  pk?: string;
  /** Page size of the top list, 1..1000 (top). */
  n?: number;
  /** Rows to skip (top, suspicious, movers). */
  offset?: number;
  /** Page size, 1..1000 (suspicious, movers). */
  limit?: number;
  /** One of rankd's --gains.windows such as 24h, or a variable such as $window (movers). */
  window?: string;
  /** gainers (the largest gains first) or losers (movers). */
  order?: MoversOrder;
}

export const DEFAULT_QUERY: Partial<RankdQuery> = {
  queryType: 'average',
  n: 100,
  offset: 0,
  limit: 100,
  window: '24h',
  order: 'gainers',
};

/** jsonData of the datasource. */
export interface RankdOptions extends DataSourceJsonData {
  /** rankd's base URL, such as http://rankd:9867. */
  url?: string;
}

/** secureJsonData of the datasource: sent as Authorization: Bearer. */
export interface RankdSecureJsonData {
  token?: string;
}
