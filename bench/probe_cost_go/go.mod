module guardbench/probecostgo

go 1.19
