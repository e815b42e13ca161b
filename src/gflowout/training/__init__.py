"""The training harness's parts: builders (config -> data, net, method), resumable loaders, the LightningModule."""
