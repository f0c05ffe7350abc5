import React, { ChangeEvent } from 'react';
import { QueryEditorProps, SelectableValue } from '@grafana/data';
import { InlineField, InlineFieldRow, Input, Select } from '@grafana/ui';

import { DataSource } from '../datasource';
import { MoversOrder, QueryType, RankdOptions, RankdQuery } from '../types';

type Props = QueryEditorProps<DataSource, RankdQuery, RankdOptions>;

const queryTypes: Array<SelectableValue<QueryType>> = [
  { label: 'Influencer', value: 'influencer', description: 'Latest values, rank, percentile and suspicious flag of one pk' },
  { label: 'Average', value: 'average', description: 'Average, sum, min, max and percentiles of followers' },
  { label: 'Top', value: 'top', description: 'The top N influencers by followers' },
  { label: 'Suspicious', value: 'suspicious', description: 'Influencers flagged suspicious, most followed first' },
  { label: 'Gains', value: 'gains', description: 'Followers and following gained over each window, with the gain rank, of up to 5 pks' },
  { label: 'Movers', value: 'movers', description: 'The largest follower gains or losses over a window' },
];

const orders: Array<SelectableValue<MoversOrder>> = [
  { label: 'Gainers', value: 'gainers', description: 'Largest gains first' },
  { label: 'Losers', value: 'losers', description: 'Largest losses first' },
];

/** Picks the query type and its parameters; the backend checks them. */
export function QueryEditor({ query, onChange, onRunQuery }: Props) {
  const set = (patch: Partial<RankdQuery>, run = false) => {
    onChange({ ...query, ...patch });
    if (run) {
      onRunQuery();
    }
  };
  const num = (event: ChangeEvent<HTMLInputElement>) => {
    const v = parseInt(event.target.value, 10);
    return Number.isNaN(v) ? undefined : v;
  };

  return (
    <InlineFieldRow>
      <InlineField label="Query" labelWidth={10}>
        <Select
          inputId="query-editor-type"
          options={queryTypes}
          value={query.queryType}
          width={20}
          onChange={(v) => set({ queryType: v.value }, true)}
        />
      </InlineField>
      {(query.queryType === 'influencer' || query.queryType === 'gains') && (
        <InlineField label="pk" labelWidth={6} tooltip="An influencer pk such as 1000001, up to 5 comma-separated, or a variable such as $pk">
          <Input
            id="query-editor-pk"
            value={query.pk || ''}
            placeholder="1000001 or $pk"
            width={20}
            onChange={(e: ChangeEvent<HTMLInputElement>) => set({ pk: e.target.value })}
            onBlur={onRunQuery}
          />
        </InlineField>
      )}
      {query.queryType === 'top' && (
        <InlineField label="N" labelWidth={6} tooltip="How many influencers, 1..1000">
          <Input
            id="query-editor-n"
            type="number"
            min={1}
            max={1000}
            value={query.n ?? 100}
            width={10}
            onChange={(e: ChangeEvent<HTMLInputElement>) => set({ n: num(e) })}
            onBlur={onRunQuery}
          />
        </InlineField>
      )}
      {query.queryType === 'movers' && (
        <InlineField label="Window" labelWidth={8} tooltip="One of rankd's --gains.windows (1h, 24h, 7d, 30d by default), or a variable such as $window">
          <Input
            id="query-editor-window"
            value={query.window || ''}
            placeholder="24h or $window"
            width={12}
            onChange={(e: ChangeEvent<HTMLInputElement>) => set({ window: e.target.value })}
            onBlur={onRunQuery}
          />
        </InlineField>
      )}
      {query.queryType === 'movers' && (
        <InlineField label="Order" labelWidth={8}>
          <Select
            inputId="query-editor-order"
            options={orders}
            value={query.order ?? 'gainers'}
            width={14}
            onChange={(v) => set({ order: v.value }, true)}
          />
        </InlineField>
      )}
      {(query.queryType === 'suspicious' || query.queryType === 'movers') && (
        <InlineField label="Limit" labelWidth={8} tooltip="Page size, 1..1000">
          <Input
            id="query-editor-limit"
            type="number"
            min={1}
            max={1000}
            value={query.limit ?? 100}
            width={10}
            onChange={(e: ChangeEvent<HTMLInputElement>) => set({ limit: num(e) })}
            onBlur={onRunQuery}
          />
        </InlineField>
      )}
      {(query.queryType === 'top' || query.queryType === 'suspicious' || query.queryType === 'movers') && (
        <InlineField label="Offset" labelWidth={8} tooltip="Rows to skip, for paging">
          <Input
            id="query-editor-offset"
            type="number"
            min={0}
            value={query.offset ?? 0}
            width={10}
            onChange={(e: ChangeEvent<HTMLInputElement>) => set({ offset: num(e) })}
            onBlur={onRunQuery}
          />
        </InlineField>
      )}
    </InlineFieldRow>
  );
}
