global using MapType = BpfJit.Frontend.Elf.MapType;
