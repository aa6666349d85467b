module github.com/plume-emissions/plume

go 1.26
