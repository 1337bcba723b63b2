global using MapType = BpfJit.Frontend.Elf.MapType;
global using KptrField = BpfJit.Frontend.Elf.KptrField;
