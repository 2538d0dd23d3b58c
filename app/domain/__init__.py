"""The api's domains, one package each: controllers (thin), services (logic), schemas, deps."""
