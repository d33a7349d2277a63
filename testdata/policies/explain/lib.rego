package warden.lib

ok if true
