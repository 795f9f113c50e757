"""The demo and the local advertiser it (and the tests) post to."""
