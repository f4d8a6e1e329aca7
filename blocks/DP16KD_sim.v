// Behavioural simulation model of the Lattice ECP5 DP16KD block RAM, written for this
// project (the open tools ship none that Icarus can run). It covers what blocks/ram.py
// instantiates: pseudo dual port, 512 x 36 (DATA_WIDTH_A = DATA_WIDTH_B = 36), port A
// writes, port B reads; data bits 0..17 on DIA/DOA and 18..35 on DIB/DOB; word address
// on AD*5..AD*13; AD A0..A3 are the byte enables of a write; REGMODE_B NOREG or OUTREG
// (CEB clocks the read register, OCEB the output register); the initial contents from
// INITVAL_00..INITVAL_3F (each 16 slots of 20 bits, an 18-bit word in each: the 36-bit
// word a is the 18-bit words 2a (bits 0..17) and 2a + 1, as Yosys's ECP5 mapping writes
// them; blocks/rom.py). Simulators and lint read it; synthesis does not (the primitive
// is the device's).
/* verilator lint_off DECLFILENAME */
/* verilator lint_off UNUSEDSIGNAL */
/* verilator lint_off UNUSEDPARAM */
`timescale 1ns/10ps  // as MyHDL writes it: lint (TIMESCALEMOD) wants every module or none to have one
module DP16KD (
    input wire CLKA,
    input wire WEA,
    input wire CEA,
    input wire OCEA,
    input wire RSTA,
    input wire CLKB,
    input wire WEB,
    input wire CEB,
    input wire OCEB,
    input wire RSTB,
    input wire CSA0,
    input wire CSA1,
    input wire CSA2,
    input wire CSB0,
    input wire CSB1,
    input wire CSB2,
    input wire ADA0,
    input wire ADA1,
    input wire ADA2,
    input wire ADA3,
    input wire ADA4,
    input wire ADA5,
    input wire ADA6,
    input wire ADA7,
    input wire ADA8,
    input wire ADA9,
    input wire ADA10,
    input wire ADA11,
    input wire ADA12,
    input wire ADA13,
    input wire ADB0,
    input wire ADB1,
    input wire ADB2,
    input wire ADB3,
    input wire ADB4,
    input wire ADB5,
    input wire ADB6,
    input wire ADB7,
    input wire ADB8,
    input wire ADB9,
    input wire ADB10,
    input wire ADB11,
    input wire ADB12,
    input wire ADB13,
    input wire DIA0,
    input wire DIA1,
    input wire DIA2,
    input wire DIA3,
    input wire DIA4,
    input wire DIA5,
    input wire DIA6,
    input wire DIA7,
    input wire DIA8,
    input wire DIA9,
    input wire DIA10,
    input wire DIA11,
    input wire DIA12,
    input wire DIA13,
    input wire DIA14,
    input wire DIA15,
    input wire DIA16,
    input wire DIA17,
    input wire DIB0,
    input wire DIB1,
    input wire DIB2,
    input wire DIB3,
    input wire DIB4,
    input wire DIB5,
    input wire DIB6,
    input wire DIB7,
    input wire DIB8,
    input wire DIB9,
    input wire DIB10,
    input wire DIB11,
    input wire DIB12,
    input wire DIB13,
    input wire DIB14,
    input wire DIB15,
    input wire DIB16,
    input wire DIB17,
    output wire DOA0,
    output wire DOA1,
    output wire DOA2,
    output wire DOA3,
    output wire DOA4,
    output wire DOA5,
    output wire DOA6,
    output wire DOA7,
    output wire DOA8,
    output wire DOA9,
    output wire DOA10,
    output wire DOA11,
    output wire DOA12,
    output wire DOA13,
    output wire DOA14,
    output wire DOA15,
    output wire DOA16,
    output wire DOA17,
    output wire DOB0,
    output wire DOB1,
    output wire DOB2,
    output wire DOB3,
    output wire DOB4,
    output wire DOB5,
    output wire DOB6,
    output wire DOB7,
    output wire DOB8,
    output wire DOB9,
    output wire DOB10,
    output wire DOB11,
    output wire DOB12,
    output wire DOB13,
    output wire DOB14,
    output wire DOB15,
    output wire DOB16,
    output wire DOB17
);
    parameter DATA_WIDTH_A = 36;
    parameter DATA_WIDTH_B = 36;
    parameter REGMODE_A = "NOREG";
    parameter REGMODE_B = "NOREG";
    parameter RESETMODE = "SYNC";
    parameter ASYNC_RESET_RELEASE = "SYNC";
    parameter CSDECODE_A = "0b000";
    parameter CSDECODE_B = "0b000";
    parameter GSR = "ENABLED";
    parameter [319:0] INITVAL_00 = 320'h0;
    parameter [319:0] INITVAL_01 = 320'h0;
    parameter [319:0] INITVAL_02 = 320'h0;
    parameter [319:0] INITVAL_03 = 320'h0;
    parameter [319:0] INITVAL_04 = 320'h0;
    parameter [319:0] INITVAL_05 = 320'h0;
    parameter [319:0] INITVAL_06 = 320'h0;
    parameter [319:0] INITVAL_07 = 320'h0;
    parameter [319:0] INITVAL_08 = 320'h0;
    parameter [319:0] INITVAL_09 = 320'h0;
    parameter [319:0] INITVAL_0A = 320'h0;
    parameter [319:0] INITVAL_0B = 320'h0;
    parameter [319:0] INITVAL_0C = 320'h0;
    parameter [319:0] INITVAL_0D = 320'h0;
    parameter [319:0] INITVAL_0E = 320'h0;
    parameter [319:0] INITVAL_0F = 320'h0;
    parameter [319:0] INITVAL_10 = 320'h0;
    parameter [319:0] INITVAL_11 = 320'h0;
    parameter [319:0] INITVAL_12 = 320'h0;
    parameter [319:0] INITVAL_13 = 320'h0;
    parameter [319:0] INITVAL_14 = 320'h0;
    parameter [319:0] INITVAL_15 = 320'h0;
    parameter [319:0] INITVAL_16 = 320'h0;
    parameter [319:0] INITVAL_17 = 320'h0;
    parameter [319:0] INITVAL_18 = 320'h0;
    parameter [319:0] INITVAL_19 = 320'h0;
    parameter [319:0] INITVAL_1A = 320'h0;
    parameter [319:0] INITVAL_1B = 320'h0;
    parameter [319:0] INITVAL_1C = 320'h0;
    parameter [319:0] INITVAL_1D = 320'h0;
    parameter [319:0] INITVAL_1E = 320'h0;
    parameter [319:0] INITVAL_1F = 320'h0;
    parameter [319:0] INITVAL_20 = 320'h0;
    parameter [319:0] INITVAL_21 = 320'h0;
    parameter [319:0] INITVAL_22 = 320'h0;
    parameter [319:0] INITVAL_23 = 320'h0;
    parameter [319:0] INITVAL_24 = 320'h0;
    parameter [319:0] INITVAL_25 = 320'h0;
    parameter [319:0] INITVAL_26 = 320'h0;
    parameter [319:0] INITVAL_27 = 320'h0;
    parameter [319:0] INITVAL_28 = 320'h0;
    parameter [319:0] INITVAL_29 = 320'h0;
    parameter [319:0] INITVAL_2A = 320'h0;
    parameter [319:0] INITVAL_2B = 320'h0;
    parameter [319:0] INITVAL_2C = 320'h0;
    parameter [319:0] INITVAL_2D = 320'h0;
    parameter [319:0] INITVAL_2E = 320'h0;
    parameter [319:0] INITVAL_2F = 320'h0;
    parameter [319:0] INITVAL_30 = 320'h0;
    parameter [319:0] INITVAL_31 = 320'h0;
    parameter [319:0] INITVAL_32 = 320'h0;
    parameter [319:0] INITVAL_33 = 320'h0;
    parameter [319:0] INITVAL_34 = 320'h0;
    parameter [319:0] INITVAL_35 = 320'h0;
    parameter [319:0] INITVAL_36 = 320'h0;
    parameter [319:0] INITVAL_37 = 320'h0;
    parameter [319:0] INITVAL_38 = 320'h0;
    parameter [319:0] INITVAL_39 = 320'h0;
    parameter [319:0] INITVAL_3A = 320'h0;
    parameter [319:0] INITVAL_3B = 320'h0;
    parameter [319:0] INITVAL_3C = 320'h0;
    parameter [319:0] INITVAL_3D = 320'h0;
    parameter [319:0] INITVAL_3E = 320'h0;
    parameter [319:0] INITVAL_3F = 320'h0;

    reg [35:0] mem [0:511];
    reg [35:0] read_q;
    reg [35:0] out_q;
    wire [8:0] write_addr = {ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5};
    wire [8:0] read_addr = {ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5};
    wire [35:0] data_in = {DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0, DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0};
    wire [3:0] byte_enable = {ADA3, ADA2, ADA1, ADA0};
    /* verilator lint_off WIDTH */  // parameter strings of different lengths
    wire [35:0] data_out = (REGMODE_B == "OUTREG") ? out_q : read_q;
    /* verilator lint_on WIDTH */
    integer i;
    integer row;
    integer slot;
    reg [319:0] line;

    function [319:0] initval(input integer index);
        case (index)
            0: initval = INITVAL_00;
            1: initval = INITVAL_01;
            2: initval = INITVAL_02;
            3: initval = INITVAL_03;
            4: initval = INITVAL_04;
            5: initval = INITVAL_05;
            6: initval = INITVAL_06;
            7: initval = INITVAL_07;
            8: initval = INITVAL_08;
            9: initval = INITVAL_09;
            10: initval = INITVAL_0A;
            11: initval = INITVAL_0B;
            12: initval = INITVAL_0C;
            13: initval = INITVAL_0D;
            14: initval = INITVAL_0E;
            15: initval = INITVAL_0F;
            16: initval = INITVAL_10;
            17: initval = INITVAL_11;
            18: initval = INITVAL_12;
            19: initval = INITVAL_13;
            20: initval = INITVAL_14;
            21: initval = INITVAL_15;
            22: initval = INITVAL_16;
            23: initval = INITVAL_17;
            24: initval = INITVAL_18;
            25: initval = INITVAL_19;
            26: initval = INITVAL_1A;
            27: initval = INITVAL_1B;
            28: initval = INITVAL_1C;
            29: initval = INITVAL_1D;
            30: initval = INITVAL_1E;
            31: initval = INITVAL_1F;
            32: initval = INITVAL_20;
            33: initval = INITVAL_21;
            34: initval = INITVAL_22;
            35: initval = INITVAL_23;
            36: initval = INITVAL_24;
            37: initval = INITVAL_25;
            38: initval = INITVAL_26;
            39: initval = INITVAL_27;
            40: initval = INITVAL_28;
            41: initval = INITVAL_29;
            42: initval = INITVAL_2A;
            43: initval = INITVAL_2B;
            44: initval = INITVAL_2C;
            45: initval = INITVAL_2D;
            46: initval = INITVAL_2E;
            47: initval = INITVAL_2F;
            48: initval = INITVAL_30;
            49: initval = INITVAL_31;
            50: initval = INITVAL_32;
            51: initval = INITVAL_33;
            52: initval = INITVAL_34;
            53: initval = INITVAL_35;
            54: initval = INITVAL_36;
            55: initval = INITVAL_37;
            56: initval = INITVAL_38;
            57: initval = INITVAL_39;
            58: initval = INITVAL_3A;
            59: initval = INITVAL_3B;
            60: initval = INITVAL_3C;
            61: initval = INITVAL_3D;
            62: initval = INITVAL_3E;
            63: initval = INITVAL_3F;
            default: initval = 320'h0;
        endcase
    endfunction

    initial begin
        for (row = 0; row < 64; row = row + 1) begin
            line = initval(row);
            for (slot = 0; slot < 16; slot = slot + 2) begin
                mem[row * 8 + slot / 2] = {line[20 * slot + 20 +: 18], line[20 * slot +: 18]};
            end
        end
    end

    always @(posedge CLKA) begin
        if (CEA && WEA) begin
            for (i = 0; i < 4; i = i + 1) begin
                if (byte_enable[i]) begin
                    mem[write_addr][9 * i +: 9] <= data_in[9 * i +: 9];
                end
            end
        end
    end

    always @(posedge CLKB) begin
        if (CEB) begin
            read_q <= mem[read_addr];
        end
        if (OCEB) begin
            out_q <= read_q;
        end
    end

    assign {DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2, DOB1, DOB0, DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5, DOA4, DOA3, DOA2, DOA1, DOA0} = data_out;
endmodule
/* verilator lint_on UNUSEDPARAM */
/* verilator lint_on UNUSEDSIGNAL */
/* verilator lint_on DECLFILENAME */
