import React, { ChangeEvent } from 'react';
import { DataSourcePluginOptionsEditorProps } from '@grafana/data';
import { InlineField, Input, SecretInput } from '@grafana/ui';

import { RankdOptions, RankdSecureJsonData } from '../types';

type Props = DataSourcePluginOptionsEditorProps<RankdOptions, RankdSecureJsonData>;

/** rankd's URL, and an optional token kept in secure JSON. */
export function ConfigEditor({ options, onOptionsChange }: Props) {
  const { jsonData, secureJsonFields, secureJsonData } = options;

  const onURLChange = (event: ChangeEvent<HTMLInputElement>) => {
    onOptionsChange({ ...options, jsonData: { ...jsonData, url: event.target.value } });
  };
  const onTokenChange = (event: ChangeEvent<HTMLInputElement>) => {
    onOptionsChange({ ...options, secureJsonData: { token: event.target.value } });
  };
  const onResetToken = () => {
    onOptionsChange({
      ...options,
      secureJsonFields: { ...secureJsonFields, token: false },
      secureJsonData: { ...secureJsonData, token: '' },
    });
  };

  return (
    <>
      <InlineField label="rankd URL" labelWidth={16} tooltip="Base URL of rankd, as the Grafana server reaches it">
        <Input
          id="config-editor-url"
          value={jsonData.url || ''}
          placeholder="http://rankd:9867"
          width={40}
          onChange={onURLChange}
        />
      </InlineField>
      <InlineField
        label="Token"
        labelWidth={16}
        tooltip="Optional; sent as Authorization: Bearer <token>, for a proxy in front of rankd"
      >
        <SecretInput
          id="config-editor-token"
          isConfigured={Boolean(secureJsonFields?.token)}
          value={secureJsonData?.token || ''}
          placeholder="optional bearer token"
          width={40}
          onReset={onResetToken}
          onChange={onTokenChange}
        />
      </InlineField>
    </>
  );
}
