import { CoreApp, DataSourceInstanceSettings, ScopedVars } from '@grafana/data';
import { DataSourceWithBackend, getTemplateSrv } from '@grafana/runtime';

import { DEFAULT_QUERY, RankdOptions, RankdQuery } from './types';

/** Queries go to the plugin's backend, which asks rankd. */
export class DataSource extends DataSourceWithBackend<RankdQuery, RankdOptions> {
  constructor(instanceSettings: DataSourceInstanceSettings<RankdOptions>) {
    super(instanceSettings);
  }

  getDefaultQuery(_: CoreApp): Partial<RankdQuery> {
    return DEFAULT_QUERY;
  }

  /**
   * Dashboard variables in pk and window (such as $pk) are replaced before
   * the backend sees the query; a multi-value pk becomes a comma-separated
   * list.
   */
  applyTemplateVariables(query: RankdQuery, scopedVars: ScopedVars): RankdQuery {
    const out = { ...query };
    if (query.pk) {
      out.pk = getTemplateSrv().replace(query.pk, scopedVars, 'csv');
    }
    if (query.window) {
      out.window = getTemplateSrv().replace(query.window, scopedVars);
    }
    return out;
  }
}
