module guardtest/goclient

go 1.19
