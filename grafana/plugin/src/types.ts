import { DataSourceJsonData } from '@grafana/data';
import { DataQuery } from '@grafana/schema';

/** What a query asks rankd for. */
export type QueryType = 'influencer' | 'average' | 'top' | 'suspicious';

/** The query model the backend reads: {queryType, pk, n, offset, limit}. */
export interface RankdQuery extends DataQuery {
  queryType?: QueryType;
  /** Influencer pk, or a dashboard variable such as $pk (influencer). */
  pk?: string;
  /** Page size of the top list, 1..1000 (top). */
  n?: number;
  /** Rows to skip (top, suspicious). */
  offset?: number;
  /** Page size of the suspicious list, 1..1000 (suspicious). */
  limit?: number;
}

export const DEFAULT_QUERY: Partial<RankdQuery> = {
  queryType: 'average',
  n: 100,
  offset: 0,
  limit: 100,
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
