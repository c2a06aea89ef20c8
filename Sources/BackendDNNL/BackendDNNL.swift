// BackendDNNL
