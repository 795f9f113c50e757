"""Attribution: clicks linked to the impressions they followed, and the advertiser's
postbacks matched to a click or impression, judged and paid."""
